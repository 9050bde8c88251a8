"""Minari datasets: bit-exact round trip, Minari's own layout, atomic writes, clear errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from latentrl.data.cache import FrameCache
from latentrl.data.episode import Episode
from latentrl.data.errors import DatasetCorruptError, DatasetExistsError, DatasetNotFoundError
from latentrl.data.generate import GenerationSpec, generate_episodes
from latentrl.data.minari_io import (
    DatasetReader,
    DatasetWriter,
    list_datasets,
    load_minari_dataset,
    read_metadata,
    write_dataset,
)
from tests.data.conftest import DOTS_ID, PROCGEN_LIKE_ID

ID = "test/dots-v0"


def dots_episodes(n: int = 3, **env_kwargs) -> list[Episode]:
    kwargs = {"num_agents": 2, "vary_length": True, **env_kwargs}
    spec = GenerationSpec(DOTS_ID, kwargs, max_steps=10, compression=None)
    return list(generate_episodes(spec, range(n)))


def write(root: Path, episodes: list[Episode], dataset_id: str = ID, **kwargs) -> Path:
    env = gym.make(DOTS_ID, num_agents=episodes[0].actions.shape[1])
    return write_dataset(
        dataset_id,
        episodes,
        frame_shape=episodes[0].frames.shape[1:],
        action_space=env.action_space,
        root=root,
        env_spec=env.spec,
        metadata={"task": "dots"},
        **kwargs,
    )


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_bit_exact_round_trip_through_minari(root: Path, compression: str) -> None:
    episodes = dots_episodes(3)
    write(root, episodes, compression=compression)
    dataset = load_minari_dataset(ID, root)
    assert dataset.total_episodes == 3
    assert dataset.total_steps == sum(e.num_steps for e in episodes)
    for got, want in zip(dataset.iterate_episodes(), episodes, strict=True):
        # Channel-first on disk, so Minari never JPEGs them: every bit comes back.
        assert got.observations.dtype == np.uint8
        np.testing.assert_array_equal(got.observations.transpose(0, 2, 3, 1), want.frames)
        np.testing.assert_array_equal(got.actions, want.actions)
        np.testing.assert_array_equal(got.rewards, want.rewards)
        np.testing.assert_array_equal(got.terminations, want.terminations)
        np.testing.assert_array_equal(got.truncations, want.truncations)
        for key, value in want.infos.items():
            assert got.infos[key].dtype == value.dtype, key  # uint8 stays an array
            np.testing.assert_array_equal(got.infos[key], value)
    # ... and with plain minari.load_dataset once the root is Minari's root.
    assert minari.load_dataset(ID).total_episodes == 3


def test_reader_round_trip_and_metadata(root: Path) -> None:
    episodes = dots_episodes(2)
    write(root, episodes)
    with DatasetReader(ID, root) as reader:
        for i, want in enumerate(episodes):
            got = reader.read_episode(i)
            np.testing.assert_array_equal(got.frames, want.frames)
            np.testing.assert_array_equal(got.actions, want.actions)
            assert got.seed == want.seed
    meta = read_metadata(ID, root)["latentrl"]
    assert meta["task"] == "dots"
    assert meta["frame_shape"] == [32, 32, 3]
    assert meta["frame_layout"] == "chw"
    assert meta["seed_range"] == [0, 1]


def test_recover_environment(root: Path) -> None:
    write(root, dots_episodes(1))
    env = load_minari_dataset(ID, root).recover_environment()
    assert env.spec.id == DOTS_ID


def _tree(group: h5py.Group) -> dict[str, object]:
    out: dict[str, object] = {"attrs": sorted(group.attrs)}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _tree(item)
        else:
            out[key] = (item.shape, item.dtype.str, item.maxshape)
    return out


def test_layout_matches_minari_own_writer(root: Path) -> None:
    """Our writer (precompressed chunks) produces the groups Minari's own writer produces."""
    episodes = dots_episodes(2)
    for ep in episodes:  # Minari's writer would JPEG a uint8 image-like info array
        ep.infos.pop("tile_color")
    env = gym.make(DOTS_ID)
    buffers = [
        EpisodeBuffer(
            seed=ep.seed,
            observations=np.ascontiguousarray(ep.frames.transpose(0, 3, 1, 2)),
            actions=ep.actions,
            rewards=list(ep.rewards),
            terminations=list(ep.terminations),
            truncations=list(ep.truncations),
            infos=dict(ep.infos),
        )
        for ep in episodes
    ]
    h, w, c = episodes[0].frames.shape[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            "test/reference-v0",
            buffers,
            observation_space=gym.spaces.Box(0, 255, (c, h, w), np.uint8),
            action_space=env.action_space,
        )
    write(root, episodes)
    ref_file = root / "test/reference-v0/data/main_data.hdf5"
    with h5py.File(ref_file) as ref, h5py.File(root / ID / "data/main_data.hdf5") as ours:
        assert sorted(ref) == sorted(ours)
        for name in ref:
            assert _tree(ours[name]) == _tree(ref[name]), name
            assert dict(ours[name].attrs) == dict(ref[name].attrs)
    ref_meta = set(json.loads((ref_file.parent / "metadata.json").read_text()))
    our_meta = set(read_metadata(ID, root))
    assert ref_meta <= our_meta


def test_refuses_to_overwrite_unless_asked(root: Path) -> None:
    write(root, dots_episodes(1))
    with pytest.raises(DatasetExistsError, match="overwrite=True"):
        write(root, dots_episodes(2))
    write(root, dots_episodes(2), overwrite=True)
    assert load_minari_dataset(ID, root).total_episodes == 2
    assert list_datasets(root) == [ID]


def test_crash_leaves_no_dataset(root: Path) -> None:
    episodes = dots_episodes(2)
    env = gym.make(DOTS_ID)
    with (
        pytest.raises(RuntimeError, match="boom"),
        DatasetWriter(ID, frame_shape=(32, 32, 3), action_space=env.action_space, root=root) as w,
    ):
        w.add(episodes[0])
        raise RuntimeError("boom")
    assert list_datasets(root) == []
    assert not (root / ID).exists()
    assert not (root / ".staging").exists()


def test_crash_while_overwriting_keeps_old_dataset(root: Path) -> None:
    write(root, dots_episodes(1))
    env = gym.make(DOTS_ID)
    with (
        pytest.raises(RuntimeError),
        DatasetWriter(
            ID, frame_shape=(32, 32, 3), action_space=env.action_space, root=root, overwrite=True
        ) as w,
    ):
        w.add(dots_episodes(1)[0])
        raise RuntimeError("boom")
    assert load_minari_dataset(ID, root).total_episodes == 1


def test_wrong_frame_shape_is_refused(root: Path) -> None:
    env = gym.make(DOTS_ID)
    with (
        pytest.raises(ValueError, match="stores"),
        DatasetWriter(ID, frame_shape=(16, 16, 3), action_space=env.action_space, root=root) as w,
    ):
        w.add(dots_episodes(1)[0])


def test_unknown_id_lists_what_exists(root: Path) -> None:
    write(root, dots_episodes(1))
    with pytest.raises(DatasetNotFoundError) as err:
        FrameCache.load("test/dotz-v0", root)
    message = str(err.value)
    assert "test/dotz-v0" in message and ID in message and str(root) in message
    with pytest.raises(DatasetNotFoundError, match=r"\(none\)"):
        FrameCache.load(ID, root / "elsewhere")


def test_truncated_file_names_path_and_fix(root: Path) -> None:
    write(root, dots_episodes(3), compression="none")
    h5 = root / ID / "data" / "main_data.hdf5"
    size = h5.stat().st_size
    with open(h5, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(DatasetCorruptError) as err:
        FrameCache.load(ID, root)
    assert str(h5) in str(err.value) and "regenerate" in str(err.value)


def test_damaged_chunk_is_reported(root: Path) -> None:
    write(root, dots_episodes(1))
    h5 = root / ID / "data" / "main_data.hdf5"
    with h5py.File(h5) as f:
        dset = f["episode_0/observations"]
        offset = dset.id.get_chunk_info(0).byte_offset
    with open(h5, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 16)  # clobber the zlib header of frame 0
    with pytest.raises(DatasetCorruptError, match="regenerate"):
        FrameCache.load(ID, root)


def test_discrete_actions_are_stored_in_the_env_space(root: Path) -> None:
    spec = GenerationSpec(PROCGEN_LIKE_ID, compression=None)
    episodes = list(generate_episodes(spec, range(2)))
    env = gym.make(PROCGEN_LIKE_ID)
    write_dataset(
        "test/procgenlike-v0",
        episodes,
        frame_shape=(16, 16, 3),
        action_space=env.action_space,
        root=root,
    )
    dataset = load_minari_dataset("test/procgenlike-v0", root)
    got = next(iter(dataset.iterate_episodes()))
    assert got.actions.shape == (episodes[0].num_steps,)  # Discrete: one int per step
    np.testing.assert_array_equal(got.actions, episodes[0].actions[:, 0])
