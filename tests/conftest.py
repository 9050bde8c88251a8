"""Shared test configuration: one torch thread and a fixed seed for every test."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_torch() -> None:
    # CI machines have 2 cores; one thread keeps timings stable and results reproducible.
    torch.set_num_threads(1)
    torch.manual_seed(0)
