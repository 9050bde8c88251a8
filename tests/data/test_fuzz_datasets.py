"""Fuzzing the dataset loader: damaged files get a clear error or load correctly.

Each case copies one intact dataset, damages the copy (bytes overwritten, the file cut short,
metadata.json edited) and loads it. The load must either raise one of our
:class:`~latentrl.data.errors.DatasetError` types naming the dataset's file or folder, or
return exactly the intact dataset's frames and labels. Reading must change no file on disk
(SHA-256 of every file before and after).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentrl.data.cache import FrameCache
from latentrl.data.errors import DatasetError
from tests.data.test_minari_io import ID, dots_episodes, write

H5 = Path(ID) / "data" / "main_data.hdf5"
META = Path(ID) / "data" / "metadata.json"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FrameCache]:
    root = tmp_path_factory.mktemp("intact")
    write(root, dots_episodes(3))
    return root, FrameCache.load(ID, root, threads=1)


def same(a: FrameCache, b: FrameCache) -> bool:
    return all(
        (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        for x, y in (
            (a.frames, b.frames),
            (a.episode_starts, b.episode_starts),
            (a.actions, b.actions),
            (a.positions, b.positions),
        )
    )


def check_load(root: Path, reference: FrameCache) -> None:
    before = digests(root)
    try:
        cache = FrameCache.load(ID, root, threads=1)
    except DatasetError as e:
        message = str(e)
        assert str(root / ID) in message, message  # names the file or the dataset folder
        assert "Fix" in message or "regenerate" in message, message
    else:
        assert same(cache, reference), "a damaged dataset loaded as other data"
    assert digests(root) == before, "reading changed a file"


FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.data())
def test_overwritten_bytes(intact: tuple[Path, FrameCache], data: st.DataObject) -> None:
    src, reference = intact
    size = (src / H5).stat().st_size
    offset = data.draw(st.integers(0, size - 1))
    junk = data.draw(st.binary(min_size=1, max_size=32))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(src, root, dirs_exist_ok=True)
        with open(root / H5, "r+b") as f:
            f.seek(offset)
            f.write(junk[: size - offset])
        check_load(root, reference)


@FUZZ
@given(fraction=st.floats(0.0, 0.999))
def test_cut_short(intact: tuple[Path, FrameCache], fraction: float) -> None:
    src, reference = intact
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(src, root, dirs_exist_ok=True)
        with open(root / H5, "r+b") as f:
            f.truncate(int(fraction * (root / H5).stat().st_size))
        check_load(root, reference)


@FUZZ
@given(data=st.data())
def test_edited_metadata(intact: tuple[Path, FrameCache], data: st.DataObject) -> None:
    src, reference = intact
    meta = json.loads((src / META).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(src, root, dirs_exist_ok=True)
        how = data.draw(st.sampled_from(["value", "ours", "drop", "text"]))
        if how == "text":
            (root / META).write_text(data.draw(st.text(max_size=40)))
        else:
            target = meta if how != "ours" else meta["latentrl"]
            key = data.draw(st.sampled_from(sorted(target)))
            if how == "drop":
                del target[key]
            else:
                target[key] = data.draw(json_values)
            (root / META).write_text(json.dumps(meta))
        check_load(root, reference)
