"""Datasets that are damaged or not what they claim are refused with the file, what was
expected, what was found and the fix; nothing on disk is changed by reading."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from latentrl.data.cache import FrameCache
from latentrl.data.errors import DatasetCorruptError, DatasetError, DatasetIdError
from tests.data.test_minari_io import ID, dots_episodes, write

H5 = Path(ID) / "data" / "main_data.hdf5"


def _replace(group: h5py.Group, name: str, data: np.ndarray) -> None:
    del group[name]
    group.create_dataset(name, data=data)


def assert_clear(err: pytest.ExceptionInfo[BaseException], *parts: str) -> None:
    message = str(err.value)
    for part in parts:
        assert part in message, (part, message)
    assert "Fix:" in message and "expected" in message and "found" in message, message


def test_other_dimensions_with_the_same_byte_count_are_refused(root: Path) -> None:
    write(root, dots_episodes(3), compression="none")
    with h5py.File(root / H5, "r+") as f:
        obs = f["episode_2/observations"][()]
        t, c, h, w = obs.shape
        _replace(f["episode_2"], "observations", obs.reshape(t, c, h // 2, w * 2))
    with pytest.raises(DatasetCorruptError) as err:
        FrameCache.load(ID, root)
    assert_clear(err, str(root / H5), "episode_2/observations", f"({t}, {c}, {h}, {w})")


def test_other_frame_dtype_is_refused(root: Path) -> None:
    write(root, dots_episodes(2), compression="none")
    with h5py.File(root / H5, "r+") as f:
        obs = f["episode_1/observations"][()]
        _replace(f["episode_1"], "observations", obs.astype(np.uint16))
    with pytest.raises(DatasetCorruptError) as err:
        FrameCache.load(ID, root, labels=False)
    assert_clear(err, str(root / H5), "uint16", "uint8")


def test_action_rows_of_another_length_are_refused(root: Path) -> None:
    write(root, dots_episodes(2))
    with h5py.File(root / H5, "r+") as f:
        act = f["episode_1/actions"][()]
        _replace(f["episode_1"], "actions", act[:-1])
    with pytest.raises(DatasetCorruptError) as err:
        FrameCache.load(ID, root)
    assert_clear(err, "episode_1/actions", str(root / H5))


def test_one_frame_episode_with_labels_is_refused(root: Path) -> None:
    write(root, dots_episodes(2), compression="none")
    with h5py.File(root / H5, "r+") as f:
        group = f["episode_1"]
        group.attrs["total_steps"] = 0
        _replace(group, "observations", group["observations"][:1])
        for key in ("actions", "rewards", "terminations", "truncations"):
            _replace(group, key, group[key][:0])
        for key in list(group["infos"]):
            _replace(group["infos"], key, group["infos"][key][:1])
    with pytest.raises(DatasetCorruptError) as err:
        FrameCache.load(ID, root, labels=True)
    assert_clear(err, "episode_1", "total_steps = 0", str(root / H5))


@pytest.mark.parametrize("bad", ["foo", "ns/name-vx", "ns/name-v-1", "../up-v0", ""])
def test_malformed_dataset_id_is_a_clear_error(root: Path, bad: str) -> None:
    with pytest.raises(DatasetIdError) as err:
        FrameCache.load(bad, root)
    assert repr(bad) in str(err.value) and "namespace/name-vN" in str(err.value)
    assert "Fix:" in str(err.value)
    assert isinstance(err.value, DatasetError) and isinstance(err.value, ValueError)


def test_metadata_that_is_not_an_object_is_refused(root: Path) -> None:
    write(root, dots_episodes(1))
    meta = root / ID / "data" / "metadata.json"
    meta.write_text("[1, 2, 3]")
    with pytest.raises(DatasetCorruptError) as err:
        FrameCache.load(ID, root)
    assert_clear(err, str(meta))
