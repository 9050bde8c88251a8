"""Behaviour cloning: it really learns the expert on a tiny Goal task; augmentation is a true
symmetry; SB3 evaluation and PPO fine-tuning accept the policy; persistence and clear errors."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from agents.base import expert_agent
from agents.bc import (
    BCConfig,
    BCPolicyAgent,
    channel_first,
    dihedral,
    finetune_ppo,
    train_bc,
)
from agents.evaluate import collect, evaluate, make_env

ONE = "MultiGrid-Goal-8x8-N1-v0"  # 32x32 frames (8 cells of 4 px)
TWO = "MultiGrid-Goal-8x8-N2-v0"
SMALL = BCConfig(steps=5, batch_size=8, channels=(8,), features_dim=16, net_arch=(16,))


@pytest.fixture(scope="module")
def expert_one() -> tuple[np.ndarray, np.ndarray]:
    frames, actions, _ = collect(expert_agent(make_env(ONE)), ONE, episodes=200, seed=100_000)
    return frames, actions


@pytest.mark.slow
def test_bc_on_true_actions_reaches_the_experts_success(
    expert_one: tuple[np.ndarray, np.ndarray],
) -> None:
    # 200 expert episodes (about 1k pairs), seeds disjoint from the evaluation's.
    frames, actions = expert_one
    agent = train_bc(frames, actions, BCConfig(steps=300, seed=0), progress=False)
    env = make_env(ONE)
    expert = evaluate(expert_agent(env), ONE, episodes=50, seed=0)
    bc = evaluate(agent, ONE, episodes=50, seed=0)
    assert expert["success_rate"] == 1.0
    # "Reaches the expert": at most 5 of 50 episodes fewer, and about as fast (the return
    # falls with the episode's length; a failure returns 0).
    assert bc["success_rate"] >= 0.9, bc
    assert bc["mean_return"] >= 0.9 * expert["mean_return"], (bc, expert)


def test_training_is_seeded_and_leaves_its_inputs_alone(
    expert_one: tuple[np.ndarray, np.ndarray],
) -> None:
    frames, actions = expert_one
    frames_before, actions_before = frames.copy(), actions.copy()
    first = train_bc(frames, actions, SMALL, progress=False)
    again = train_bc(frames, actions, SMALL, progress=False)
    np.testing.assert_array_equal(frames, frames_before)
    np.testing.assert_array_equal(actions, actions_before)
    for a, b in zip(
        first.policy.state_dict().values(), again.policy.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert first.stats["pairs"] == int((actions >= 0).all(1).sum())


def _transforms(size: int) -> list[tuple[Callable[[torch.Tensor], torch.Tensor], Callable]]:
    """The 8 symmetries as (frame map on (..., h, w), cell map on int (n, 2) as (x, y)), composed
    in :func:`agents.bc.dihedral`'s order: transpose, then flip x, then flip y."""
    out = []
    for t, fx, fy in itertools.product([False, True], repeat=3):

        def frame(x: torch.Tensor, t: bool = t, fx: bool = fx, fy: bool = fy) -> torch.Tensor:
            x = x.transpose(-1, -2) if t else x
            x = x.flip(-1) if fx else x
            return x.flip(-2) if fy else x

        def cell(p: np.ndarray, t: bool = t, fx: bool = fx, fy: bool = fy) -> np.ndarray:
            p = p[:, ::-1] if t else p.copy()
            p = np.stack([size - 1 - p[:, 0] if fx else p[:, 0], p[:, 1]], 1)
            return np.stack([p[:, 0], size - 1 - p[:, 1] if fy else p[:, 1]], 1)

        out.append((frame, cell))
    return out


def test_dihedral_augmentation_is_a_symmetry_of_frames_and_moves() -> None:
    env = make_env(TWO).unwrapped
    rng = np.random.default_rng(0)
    free = np.argwhere(env.passable)[:, ::-1]
    frames, actions, states = [], [], []
    for _ in range(16):
        cells = free[rng.choice(len(free), 4, replace=False)]
        obs, _ = env.set_state(cells[:2], cells[2:])
        frames.append(obs)
        actions.append(rng.integers(0, 5, 2))
        states.append(cells)
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    acts = torch.from_numpy(np.stack(actions))
    out, out_acts = dihedral(x, acts, torch.Generator().manual_seed(1))
    used = set()
    for i, cells in enumerate(states):
        matches = [k for k, (f, _) in enumerate(_transforms(8)) if torch.equal(f(x[i]), out[i])]
        assert matches, "augmented frame is none of the 8 symmetries"
        k = matches[0]
        used.add(k)
        cell = _transforms(8)[k][1]
        # The augmented frame is what the env draws for the transformed layout...
        obs, _ = env.set_state(cell(cells[:2]), cell(cells[2:]))
        np.testing.assert_array_equal(obs, out[i].permute(1, 2, 0).numpy())
        # ...and the permuted actions move the agents where the transformed moves go.
        env.set_state(cells[:2], cells[2:])
        moved = env.step(acts[i].numpy())[4]["agent_pos"]
        env.set_state(cell(cells[:2]), cell(cells[2:]))
        moved_t = env.step(out_acts[i].numpy())[4]["agent_pos"]
        np.testing.assert_array_equal(moved_t, cell(moved))
    assert len(used) > 3  # several symmetries drawn


def test_sb3_evaluate_policy_and_ppo_finetuning_accept_the_policy(
    expert_one: tuple[np.ndarray, np.ndarray],
) -> None:
    frames, actions = expert_one
    agent = train_bc(frames, actions, SMALL, progress=False)
    env = Monitor(channel_first(make_env(ONE)))
    mean, _ = evaluate_policy(agent.policy, env, n_eval_episodes=2, deterministic=True)
    assert np.isfinite(mean)
    tuned = finetune_ppo(
        agent, ONE, 64, n_envs=2, seed=0, ppo_kwargs={"n_steps": 32, "batch_size": 32}
    )
    assert tuned.policy is not agent.policy
    changed = [
        not torch.equal(a, b)
        for a, b in zip(
            agent.policy.state_dict().values(), tuned.policy.state_dict().values(), strict=True
        )
    ]
    assert any(changed)
    assert evaluate(tuned, ONE, episodes=2, seed=0)["episodes"] == 2


def test_save_load_round_trip_and_mismatched_env(
    expert_one: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    frames, actions = expert_one
    agent = train_bc(frames, actions, dataclasses.replace(SMALL, acting="sample"), progress=False)
    agent.save(tmp_path / "bc")
    loaded = BCPolicyAgent.load(tmp_path / "bc")
    torch.testing.assert_close(loaded.logits(frames[:4]), agent.logits(frames[:4]))
    assert loaded.config == agent.config and loaded.stats == agent.stats
    # Stochastic acting is seeded by reset.
    draws = []
    for a in (agent, loaded):
        a.reset(7)
        draws.append([a.act(frames[0], {}).tolist() for _ in range(10)])
    assert draws[0] == draws[1]
    with pytest.raises(ValueError, match="the env has 2"):
        loaded.check_env(make_env(TWO))
    with pytest.raises(ValueError, match="trained on"):
        loaded.check_env(make_env(ONE, {"tile_size": 8}))
    with pytest.raises(ValueError, match="trained on"):
        evaluate(loaded, ONE, episodes=1, env_kwargs={"tile_size": 8})
    with pytest.raises(FileNotFoundError, match=r"BCPolicyAgent\.save"):
        BCPolicyAgent.load(tmp_path / "nothing")
    (tmp_path / "bc" / "policy.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        BCPolicyAgent.load(tmp_path / "bc")


def test_agent_query_extractor_trains_saves_and_fine_tunes(tmp_path: Path) -> None:
    """--extractor agents: one vector per agent, side by side; the policy trains (loss falls),
    saves and loads, and PPO fine-tuning rebuilds it for the env's agent count."""
    frames, actions, _ = collect(expert_agent(make_env(TWO)), TWO, episodes=20, seed=100_000)
    cfg = dataclasses.replace(
        SMALL, extractor="agents", agent_width=16, steps=150, batch_size=32, lr=3e-3
    )
    agent = train_bc(frames, actions, cfg, progress=False)
    extractor = agent.policy.features_extractor
    assert extractor.features_dim == 2 * 16
    obs = torch.as_tensor(frames[:3]).permute(0, 3, 1, 2).float() / 255
    assert extractor(obs).shape == (3, 32)
    assert agent.stats["final_loss"] < 0.8 * 2 * np.log(5)  # below the uniform policy's loss
    agent.save(tmp_path / "bc")
    loaded = BCPolicyAgent.load(tmp_path / "bc")
    torch.testing.assert_close(loaded.logits(frames[:4]), agent.logits(frames[:4]))
    tuned = finetune_ppo(
        agent, TWO, 64, n_envs=2, seed=0, ppo_kwargs={"n_steps": 32, "batch_size": 32}
    )
    assert evaluate(tuned, TWO, episodes=1, seed=0)["episodes"] == 1


def test_bad_demonstrations_are_clear_errors() -> None:
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"actions \(F, a\)"):
        train_bc(frames, np.zeros((3, 1), np.int64), SMALL, progress=False)
    with pytest.raises(ValueError, match="no \\(frame, action\\) pair"):
        train_bc(frames, np.full((4, 1), -1), SMALL, progress=False)
    with pytest.raises(ValueError, match="uint8 frames"):
        train_bc(frames.astype(np.float32), np.zeros((4, 1), np.int64), SMALL, progress=False)
    with pytest.raises(ValueError, match="--patch"):
        train_bc(np.zeros((4, 30, 30, 3), np.uint8), np.zeros((4, 1)), SMALL, progress=False)


def test_escape_acting_samples_only_on_a_repeated_frame(
    expert_one: tuple[np.ndarray, np.ndarray],
) -> None:
    frames, actions = expert_one
    agent = train_bc(frames, actions, dataclasses.replace(SMALL, acting="escape"), progress=False)
    frame = frames[0]
    argmax = agent.logits(frame[None])[0].argmax(-1).numpy()
    agent.reset(0)
    # Fresh frames: argmax, whatever the generator holds.
    for f in frames[:20]:
        np.testing.assert_array_equal(agent.act(f, {}), agent.logits(f[None])[0].argmax(-1))
    agent.reset(0)
    first = agent.act(frame, {})
    np.testing.assert_array_equal(first, argmax)
    # The same frame again would repeat forever under argmax: now the action is drawn.
    repeats = [agent.act(frame, {}) for _ in range(30)]
    assert any(not np.array_equal(a, argmax) for a in repeats)
