"""The throughput benchmark runs on any registered env and checks what it reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentrl.data.bench import bench_dataset_io
from tests.data.conftest import DOTS_ID


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_bench_dataset_io(tmp_path: Path, compression: str) -> None:
    figures = bench_dataset_io(DOTS_ID, episodes=3, steps=5, compression=compression, root=tmp_path)
    assert figures["raw_mb"] == pytest.approx(3 * 6 * 32 * 32 * 3 / 1e6)
    for key in ("write_mb_s", "hdf5_write_mb_s", "read_mb_s", "encode_mb_s"):
        assert figures[key] > 0
    assert list(tmp_path.iterdir()) == []  # the scratch dataset is removed
