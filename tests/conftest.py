"""Shared test configuration: one torch thread and a fixed seed for every test, and the longest
tests first.

The longest tests (minutes each) are collected first and xdist's ``load`` scheduler hands out
at most two tests at a time (``--maxschedchunk 2`` in pyproject's addopts): the two workers
then start two long tests each and take the hundreds of short ones as they free up. With the
default chunk (a quarter of each worker's share, about 80 consecutive tests) one worker would
get all four long tests in a row."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    # CI machines have 2 cores; one thread keeps timings stable and results reproducible.
    torch.set_num_threads(1)
    torch.manual_seed(0)


LONGEST = ("tests/experiments/test_seed_robustness.py", "test_planner_with_a_trained_world_model")
"""Tests of several minutes each (three FLAM trainings; a world model, BC and a planner)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, then the other slow ones, then the rest (a stable sort)."""

    def rank(item: pytest.Item) -> int:
        if any(name in item.nodeid for name in LONGEST):
            return 0
        return 1 if item.get_closest_marker("slow") is not None else 2

    items.sort(key=rank)
