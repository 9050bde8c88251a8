"""latentrl.data.recipes: dataset ids per split, generate-or-reuse, refusal, overwrite."""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latentrl.config import add_config_args, override
from latentrl.data import recipes
from latentrl.data.errors import DatasetExistsError
from latentrl.data.minari_io import dataset_path, list_datasets, read_metadata
from latentrl.data.recipes import DatasetSpec, ensure_datasets, generate_family

REPO = Path(__file__).resolve().parents[2]
# 8x8 room, 2 agents, 4 episodes of 3 steps: train 3 (seeds 0-2), val 1 (seed 3), no test.
TINY = DatasetSpec(agents=2, size=8, episodes=4, steps=3, splits=(3, 1, 0))


def _mtimes(ids: dict[str, str], root: Path) -> dict[str, int]:
    return {
        split: (dataset_path(i, root) / "data" / "main_data.hdf5").stat().st_mtime_ns
        for split, i in ids.items()
    }


def test_dataset_ids_per_split() -> None:
    spec = DatasetSpec(agents=4, episodes=1000)
    assert spec.dataset_ids() == {
        "train": "multigrid/empty-agent_4-v0",
        "val": "multigrid/empty-agent_4-v1",
        "test": "multigrid/empty-agent_4-v2",
    }
    assert TINY.dataset_ids() == {
        "train": "multigrid/empty-agent_2-size_8-v0",
        "val": "multigrid/empty-agent_2-size_8-v1",
    }  # the empty test split has no id
    assert TINY.split_seeds() == {"train": range(0, 3), "val": range(3, 4), "test": range(4, 4)}
    goal = DatasetSpec(task="goal", policy="noisy-expert", agents=8, size=16)
    assert goal.dataset_id("test") == "multigrid/goal-agent_8-noisy_expert-size_16-v2"
    procgen = DatasetSpec(env="procgen", task="CoinRun", frame_size=32, splits=(1, 0, 0))
    assert procgen.dataset_ids() == {"train": "procgen/coinrun-px_32-v0"}


def test_spec_is_checked_and_normalised() -> None:
    with pytest.raises(ValueError, match="--task goal"):
        DatasetSpec(policy="expert")
    with pytest.raises(ValueError, match="--splits"):
        DatasetSpec(splits=(0, 0, 0))
    with pytest.raises(ValueError, match="Procgen has no scripted expert"):
        DatasetSpec(env="procgen", task="coinrun", policy="expert")
    spec = DatasetSpec(splits=[8, 1, 1])  # type: ignore[arg-type]  # as JSON gives it
    assert spec.splits == (8.0, 1.0, 1.0) and hash(spec) == hash(DatasetSpec(splits=(8, 1, 1)))


def test_spec_on_a_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_config_args(parser, DatasetSpec)
    assert "pixels per cell" in parser.format_help()
    args = parser.parse_args(["--agents", "2", "--splits", "1", "0", "0", "--policy", "random"])
    spec = override(DatasetSpec(), vars(args))
    assert spec == DatasetSpec(agents=2, splits=(1, 0, 0))


def test_import_does_not_load_envs() -> None:
    code = (
        "import sys, latentrl.data.recipes; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('envs', 'minigrid', 'procgen')]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_generation_spec_is_picklable_and_builds_the_policy() -> None:
    from envs.multigrid.policies import NoisyExpertPolicy, PolicyFactory

    spec = DatasetSpec(task="goal", policy="noisy-expert", eps=0.3, agents=2, size=8, steps=5)
    gen = pickle.loads(pickle.dumps(spec.generation_spec()))  # as sent to spawned workers
    assert gen.env_id == "MultiGrid-Goal-8x8-N2-v0" and gen.imports == ("envs",)
    assert gen.policy == PolicyFactory("noisy-expert", 1, 0.3)
    env = gen.make_env()
    try:
        policy = gen.policy(env)
        assert isinstance(policy, NoisyExpertPolicy) and policy.eps == 0.3
    finally:
        env.close()
    # A size without a registered id falls back to any id of the task, overridden by kwargs.
    odd = DatasetSpec(agents=3, size=10).generation_spec()
    assert odd.env_kwargs["size"] == 10 and odd.env_kwargs["num_agents"] == 3
    with pytest.raises(ValueError, match="unknown MultiGrid policy"):
        PolicyFactory("greedy")


def test_mixed_policy_spec(root: Path) -> None:
    from envs.multigrid.policies import MixedPolicy, PolicyFactory

    spec = DatasetSpec(
        task="goal",
        policy="mixed",
        expert_share=0.25,
        agents=2,
        size=8,
        steps=3,
        episodes=4,
        splits=(3, 1, 0),
    )
    assert spec.dataset_id("train") == "multigrid/goal-agent_2-mixed-size_8-v0"
    gen = pickle.loads(pickle.dumps(spec.generation_spec()))
    assert gen.policy == PolicyFactory("mixed", 1, 0.1, 0.25)
    env = gen.make_env()
    try:
        assert isinstance(gen.policy(env), MixedPolicy)
    finally:
        env.close()
    ids = ensure_datasets(spec, root, progress=False)
    meta = read_metadata(ids["train"], root)["latentrl"]
    assert meta["policy"] == "mixed" and meta["policy_kwargs"] == {
        "repeat": 1,
        "expert_share": 0.25,
    }
    # The share changes the data: another share is refused, not reused.
    with pytest.raises(DatasetExistsError, match="expert_share"):
        ensure_datasets(dataclasses.replace(spec, expert_share=0.5), root, progress=False)
    with pytest.raises(ValueError, match="expert_share"):
        DatasetSpec(task="goal", policy="mixed", expert_share=-0.1)


def test_ensure_datasets_generates_then_reuses(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = ensure_datasets(TINY, root, progress=False)
    assert ids == TINY.dataset_ids()
    assert list_datasets(root) == sorted(ids.values())
    meta = read_metadata(ids["val"], root)["latentrl"]
    assert meta["split"] == "val" and meta["seed_range"] == [3, 3] and meta["num_episodes"] == 1
    assert meta["dataset_spec"] == {**dataclasses.asdict(TINY), "splits": [3.0, 1.0, 0.0]}
    before = _mtimes(ids, root)

    def no_generation(*args: object, **kwargs: object) -> None:
        raise AssertionError("ensure_datasets generated a dataset that exists")

    with monkeypatch.context() as m:
        m.setattr(recipes, "generate_dataset", no_generation)
        assert ensure_datasets(TINY, root, progress=False) == ids
        # Settings that do not change the data do not block reuse: same counts and seeds,
        # eps of a random policy, workers and compression.
        same = dataclasses.replace(TINY, splits=(75, 25, 0), eps=0.5)
        assert ensure_datasets(same, root, progress=False, workers=2, compression="none") == ids
    assert _mtimes(ids, root) == before

    # A missing split is generated; the existing one is left alone.
    shutil.rmtree(dataset_path(ids["train"], root))
    ensure_datasets(TINY, root, progress=False)
    after = _mtimes(ids, root)
    assert after["val"] == before["val"]
    assert read_metadata(ids["train"], root)["latentrl"]["seed_range"] == [0, 2]


def test_ensure_datasets_refuses_other_settings_then_overwrites(root: Path) -> None:
    ids = ensure_datasets(TINY, root, progress=False)
    before = _mtimes(ids, root)
    other = dataclasses.replace(TINY, steps=5)
    with pytest.raises(DatasetExistsError) as info:
        ensure_datasets(other, root, progress=False)
    message = str(info.value)
    assert ids["train"] in message and str(root.resolve()) in message
    assert "steps (--steps): stored 3, wanted 5" in message
    assert "--overwrite" in message and "--root" in message
    assert _mtimes(ids, root) == before  # refused before generating anything

    # More episodes shift the val seeds: the message names the flags that set them.
    with pytest.raises(DatasetExistsError, match=r"seeds \(--seed/--episodes/--splits\)"):
        ensure_datasets(dataclasses.replace(TINY, episodes=8), root, progress=False)

    assert ensure_datasets(other, root, progress=False, overwrite=True) == ids
    for dataset_id in ids.values():
        meta = read_metadata(dataset_id, root)["latentrl"]
        assert meta["max_steps"] == 5
    assert ensure_datasets(other, root, progress=False) == ids  # now it matches


def test_generate_family_refuses_existing_unless_overwrite(root: Path) -> None:
    results = generate_family(TINY, root, progress=False)
    assert [r.dataset_id for r in results] == list(TINY.dataset_ids().values())
    assert [r.stats.episodes for r in results] == [3, 1]
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        generate_family(TINY, root, progress=False)
    moved = dataclasses.replace(TINY, seed=100)
    results = generate_family(moved, root, progress=False, overwrite=True)
    assert read_metadata(results[0].dataset_id, root)["latentrl"]["seed_range"] == [100, 102]


def test_held_random_actions_get_their_own_dataset_id() -> None:
    held = dataclasses.replace(TINY, repeat=3).dataset_ids()
    assert all("-repeat_3-" in i for i in held.values())
    assert not any("repeat" in i for i in TINY.dataset_ids().values())
