"""Shared test configuration: one torch thread and a fixed seed for every test, and the longest
tests first.

xdist's default ``load`` scheduling hands tests out in collection order as workers free up, so
the few tests of several minutes start at once, one per worker, while the hundreds of short
ones fill in around them; collected last, they would run alone at the end. (``--dist
worksteal`` pre-splits the list between the workers and ran the three seed-robustness tests
one after another at the end: 18 min against 13.)"""

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
