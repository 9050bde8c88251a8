"""Controllable generation on a small trained FLAM: controlling one agent's slots moves that
agent only (slow: trains a 2-agent FLAM for about a minute on one core).

The data are exact codes of MultiGrid frames (one token per cell: floor, wall, agent 0, agent 1),
so the test needs neither a dataset on disk nor a trained tokenizer; frames are drawn from the
codes with one colour per code (a lossless "tokenizer": any pixel difference is a code
difference, so the tolerance below is about the model, not about reconstruction error).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from einops import repeat

import envs  # noqa: F401  (registers the MultiGrid ids)
from latentrl.control import (
    agent_tokens,
    bind_agents,
    code_actions,
    controlled_rollout,
    entity_mask,
    locality,
)
from latentrl.data.codes import CodeCache
from latentrl.data.generate import UniformRandomPolicy, rollout
from latentrl.models import LatentActionModel, ModelConfig, build_model

pytestmark = pytest.mark.slow

AGENTS, SIZE, SLOTS, STEPS, TRAIN_STEPS = 2, 8, 8, 8, 400
PALETTE = np.array([[0, 0, 0], [100, 100, 100], [230, 40, 40], [40, 230, 40]], np.uint8)
# Frames are drawn losslessly from codes, so a far pixel differs only where the model changed a
# code away from the controlled entity. Allowed: half a cell (1/128 of the frame) per frame on
# average, for an entity pushed into a neighbour that then lands beyond the one-token margin.
# Why the model uses action norm and 400 steps: docs/research/flam_seed_robustness.md.
TOLERANCE = 1 / 128


def episode_codes(positions: np.ndarray) -> np.ndarray:
    """Agent cells ``(T, a, 2)`` ``(x, y)`` -> codes ``(T, n)``: 0 floor, 1 wall, 2 + j agent j."""
    t = len(positions)
    grid = np.zeros((t, SIZE, SIZE), np.int64)
    grid[:, 0], grid[:, -1], grid[:, :, 0], grid[:, :, -1] = 1, 1, 1, 1
    for j in range(positions.shape[1]):
        grid[np.arange(t), positions[:, j, 1], positions[:, j, 0]] = 2 + j
    return grid.reshape(t, -1)


def make_cache(seeds: range) -> CodeCache:
    env = gym.make(f"MultiGrid-Empty-8x8-N{AGENTS}-v0", size=SIZE, tile_size=4)
    policy = UniformRandomPolicy(env.action_space, repeat=1)
    episodes = [rollout(env, policy, seed=s, max_steps=24) for s in seeds]
    pos = [e.infos["agent_pos"] for e in episodes]
    last = -np.ones((1, AGENTS), np.int64)
    return CodeCache(
        codes=np.concatenate([episode_codes(p) for p in pos]),
        episode_starts=np.cumsum([0] + [len(p) for p in pos]),
        actions=np.concatenate([np.concatenate([e.actions, last]) for e in episodes]),
        positions=np.concatenate(pos),
    )


def draw(codes: torch.Tensor) -> np.ndarray:
    """Codes ``(t, n)`` -> frames ``(t, 32, 32, 3)``: one colour per code, 4 px per cell."""
    cells = PALETTE[codes.view(-1, SIZE, SIZE).numpy()]
    return repeat(cells, "t gh gw c -> t (gh ph) (gw pw) c", ph=4, pw=4)


@pytest.fixture(scope="module")
def trained() -> tuple[LatentActionModel, CodeCache]:
    # Module fixtures run before the per-test autouse one: fix threads and seed here too.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train, test = make_cache(range(200)), make_cache(range(1000, 1016))
    config = ModelConfig(
        num_slots=SLOTS,
        # Learned initial slots: with seeded slots (the default) this 2-agent model on random
        # code features left more far pixels changed than the tolerance allows; not yet
        # understood (docs/research/flam_seed_robustness.md).
        slot_init="learned",
        slot_iters=2,
        action_levels=(3, 3),
        action_norm=True,
        subtokens=(),
        codebook_size=len(PALETTE),
        code_dim=8,
        grid=SIZE,
        num_agents=AGENTS,
    )
    model = build_model(config, torch.randn(len(PALETTE), 8))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    for step in range(TRAIN_STEPS):
        for group in opt.param_groups:
            group["lr"] = 1e-3 * min(1.0, (step + 1) / 50)
        loss, _ = model.loss(train.sample(4, 32, gen))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model.eval(), test


def far_changes(
    model: LatentActionModel, test: CodeCache, control_all: bool
) -> tuple[list[float], list[float], list[float]]:
    """Per held-out episode: pixels changed outside / inside agent 0's (dilated) mask when agent
    0's slots (or every slot) take prior latent actions instead of the inferred ones, and the
    fraction of the frame the mask covers."""
    outside, inside, covered = [], [], []
    for episode in range(len(test.episode_starts) - 1):
        batch = test.windows(np.array([test.episode_starts[episode]]), STEPS + 1)
        with torch.no_grad():
            encoded = model.encode_states(batch.codes)
            inferred = model.infer(encoded.states, None).actions
        assert encoded.attn is not None and batch.positions is not None
        tokens = agent_tokens(batch.positions[0, 0], 1, 1, SIZE)
        attn0 = encoded.attn[0, 0]
        entity = bind_agents(attn0, tokens, centroids=model.centroid(attn0), grid=SIZE)[0]
        gen = torch.Generator().manual_seed(episode)
        new = code_actions(model, torch.randint(0, 9, (1, STEPS), generator=gen))
        context = batch.codes[:, :1]
        reference = controlled_rollout(model, context, inferred)
        slots = tuple(range(SLOTS)) if control_all else entity.slots
        controlled = controlled_rollout(model, context, inferred, slots, new)
        mask = entity_mask(model, context, [reference, controlled], entity.slots)
        local = locality(draw(controlled[0]), draw(reference[0]), mask, SIZE, radius=1, tol=0)
        outside.append(local.changed_outside)
        inside.append(local.changed_inside)
        covered.append(local.mask_fraction)
    return outside, inside, covered


def test_controlling_one_agent_changes_pixels_only_near_it(
    trained: tuple[LatentActionModel, CodeCache],
) -> None:
    model, test = trained
    outside, inside, covered = far_changes(model, test, control_all=False)
    assert np.mean(outside) <= TOLERANCE, outside
    # The controlled agent really does something else than in the uncontrolled rollout ...
    assert np.nanmean(inside) > 0.05, inside
    # ... and "outside" is most of the frame, so the check above is not vacuous.
    assert np.mean(covered) < 0.5, covered


def test_the_check_fails_when_every_slot_is_controlled(
    trained: tuple[LatentActionModel, CodeCache],
) -> None:
    model, test = trained
    outside, _, _ = far_changes(model, test, control_all=True)
    assert np.mean(outside) > TOLERANCE, outside
