"""The latent-action decoder f: learning on a case with a known answer, shapes, persistence,
and clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from latentrl.data.codes import CodeCache
from latentrl.decoder import (
    ActionDecoder,
    DecoderConfig,
    decoder_inputs,
    label_actions,
    label_cache,
    train_decoder,
    window_start,
)
from latentrl.models import ModelConfig
from latentrl.models.base import LatentActions, States
from tests.models.tiny import AGENTS, random_batch, tiny_model

NUM_ACTIONS = 5
# (dx, dy) of STAY/UP/DOWN/LEFT/RIGHT, as envs.multigrid.core.ACTION_DELTAS.
DELTAS = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)])
ROOM = 6  # cells 0..5 per side; a move out of the room is blocked (executes as STAY)


class OracleModel(nn.Module):
    """A stand-in latent action model whose latent actions ARE the true moves.

    Codes hold, per slot ``k``, three tokens: the identity of the agent in that slot (``A`` for
    an empty slot) and its cell ``(x, y)``. States are ``[one-hot identity, x, y]`` per slot;
    the latent action of slot ``k`` is the one-hot of its displacement (factored), or the
    concatenation of every agent's one-hot in agent order (``scene``: one latent action per
    transition, which says nothing of slots).
    """

    def __init__(self, agents: int, slots: int, scene: bool = False) -> None:
        super().__init__()
        self.agents, self.slots, self.scene = agents, slots, scene
        self.dummy = nn.Parameter(torch.zeros(1))  # a device for the decoder to follow
        self.config = ModelConfig(
            model="lam" if scene else "flam",
            pos_slots=False,
            d_model=agents + 3,
            action_kind="gaussian",
            action_dim=agents * NUM_ACTIONS if scene else NUM_ACTIONS,
            num_agents=agents,
            agent_actions=NUM_ACTIONS,
        )

    def encode_states(self, codes: torch.Tensor) -> States:
        per_slot = codes.unflatten(-1, (self.slots, 3))
        ident = F.one_hot(per_slot[..., 0], self.agents + 1).float()
        return States(torch.cat([ident, per_slot[..., 1:].float()], dim=-1), None)

    def infer(self, states: torch.Tensor, true_actions: torch.Tensor | None) -> LatentActions:
        delta = (states[:, 1:, :, -2:] - states[:, :-1, :, -2:]).round().long()
        match = (delta[..., None, :] == torch.from_numpy(DELTAS)).all(-1)  # (b, t, k, 5)
        onehot = match.float()
        if self.scene:
            ident = states[:, :-1, :, : self.agents]
            per_agent = einsum(ident, onehot, "b t k a, b t k v -> b t a v")
            onehot = rearrange(per_agent, "b t a v -> b t 1 (a v)")
        return LatentActions(onehot, None, states.new_zeros(()))


def oracle_cache(agents: int, slots: int, episodes: int, length: int, seed: int) -> CodeCache:
    """Random walks of ``agents`` in a walled room, their slots shuffled once per episode.

    The shuffle means slot ``k`` is a different agent in every episode: the decoder must read
    the identity from the state to know whose move a slot's latent action is.
    """
    rng = np.random.default_rng(seed)
    codes, actions = [], []
    for _ in range(episodes):
        pos = rng.integers(0, ROOM, (agents, 2))
        order = rng.permutation(slots)  # slot order[i] holds agent i (agents < slots: empties)
        ep_codes, ep_actions = [], []
        for step in range(length):
            frame = np.zeros((slots, 3), np.int64)
            frame[:, 0] = agents
            frame[order[:agents], 0] = np.arange(agents)
            frame[order[:agents], 1:] = pos
            ep_codes.append(frame.reshape(-1))
            if step == length - 1:
                ep_actions.append(np.full(agents, -1))
                break
            want = rng.integers(0, NUM_ACTIONS, agents)
            nxt = pos + DELTAS[want]
            ok = ((nxt >= 0) & (nxt < ROOM)).all(-1)
            executed = np.where(ok, want, 0)
            pos = np.where(ok[:, None], nxt, pos)
            ep_actions.append(executed)
        codes.append(np.stack(ep_codes))
        actions.append(np.stack(ep_actions))
    starts = np.arange(episodes + 1, dtype=np.int64) * length
    return CodeCache(np.concatenate(codes).astype(np.int16), starts, np.concatenate(actions))


FAST = DecoderConfig(label_fraction=0.5, steps=400, batch_size=128, lr=3e-3, d_model=32, blocks=1)


@pytest.mark.parametrize("scene", [False, True], ids=["factored", "scene"])
def test_decoder_reads_true_actions_through_shuffled_slots(scene: bool) -> None:
    model = OracleModel(agents=3, slots=4, scene=scene)
    cache = oracle_cache(agents=3, slots=4, episodes=40, length=16, seed=0)
    decoder, report = train_decoder(model, cache, FAST, progress=False)  # type: ignore[arg-type]
    assert report.labelled_transitions == round(0.5 * 40 * 15)
    assert report.eval_transitions == 40 * 15 - report.labelled_transitions
    assert report.chance < 0.5
    assert report.accuracy > 0.97, report
    assert report.joint_accuracy > 0.9, report
    assert len(report.per_agent_accuracy) == 3
    # Labelling whole episodes agrees with the truth (episodes the decoder never saw).
    held = oracle_cache(agents=3, slots=4, episodes=4, length=16, seed=1)
    codes = torch.from_numpy(held.codes.astype(np.int64)).reshape(4, 16, -1)
    labels = label_actions(model, decoder, codes)  # type: ignore[arg-type]
    truth = held.actions.reshape(4, 16, 3)[:, :-1]
    assert labels.shape == (4, 15, 3)
    assert (labels == truth).mean() > 0.95
    # The cache layout: -1 on each episode's last frame, the same labels elsewhere.
    per_frame = label_cache(model, decoder, held)  # type: ignore[arg-type]
    assert per_frame.shape == held.actions.shape
    np.testing.assert_array_equal(per_frame[held.episode_starts[1:] - 1], -1)
    np.testing.assert_array_equal(per_frame.reshape(4, 16, 3)[:, :-1], labels)


def test_held_out_accuracy_on_a_separate_cache_and_seeded_subset() -> None:
    model = OracleModel(agents=2, slots=3)
    cache = oracle_cache(agents=2, slots=3, episodes=20, length=11, seed=0)
    val = oracle_cache(agents=2, slots=3, episodes=10, length=11, seed=7)
    cfg = dataclasses.replace(FAST, label_count=60, eval_count=50, steps=30)
    first = train_decoder(model, cache, cfg, eval_cache=val, progress=False)  # type: ignore[arg-type]
    again = train_decoder(model, cache, cfg, eval_cache=val, progress=False)  # type: ignore[arg-type]
    assert first[1].labelled_transitions == 60
    assert first[1].eval_transitions == 50
    assert first[1].per_agent_accuracy == again[1].per_agent_accuracy  # seeded
    for a, b in zip(first[0].state_dict().values(), again[0].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_transition_windows_end_with_their_transition_inside_the_episode() -> None:
    f = np.arange(5)  # the transitions of an episode of 6 frames
    start = window_start(f, np.full_like(f, 6), 3)
    np.testing.assert_array_equal(start, [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(f - start, [0, 1, 1, 1, 1])  # the transition's offset
    start = window_start(np.arange(1), np.full(1, 2), 4)  # shorter than the window
    np.testing.assert_array_equal(start, [0])


@pytest.mark.parametrize("kind", ["flam", "lam", "oclam"])
def test_real_models_shapes_and_save_load(kind: str, tmp_path: Path) -> None:
    model = tiny_model(kind).eval()
    codes = random_batch(b=3, t=5).codes
    states, actions = decoder_inputs(model, codes)
    assert states.shape[:2] == (3, 4) and actions.shape[:2] == (3, 4)
    assert actions.shape[2] == (states.shape[2] if kind == "flam" else 1)
    decoder = ActionDecoder(
        DecoderConfig(d_model=16, heads=2), states.shape[-1], actions.shape[-1], AGENTS, 5, 3
    )
    logits = decoder(states[:, 0], actions[:, 0])
    assert logits.shape == (3, AGENTS, 5)
    labels = label_actions(model, decoder, codes[0])
    assert labels.shape == (4, AGENTS) and labels.dtype == np.int64
    assert label_actions(model, decoder, codes).shape == (3, 4, AGENTS)
    decoder.save(tmp_path / "dec")
    loaded = ActionDecoder.load(tmp_path / "dec")
    assert loaded.window == 3 and loaded.config == decoder.config
    with torch.no_grad():
        assert torch.equal(
            loaded(states[:, 0], actions[:, 0]), decoder.eval()(states[:, 0], actions[:, 0])
        )


def test_label_fraction_zero_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"--label-fraction > 0 or --label-count N"):
        DecoderConfig(label_fraction=0.0)
    assert DecoderConfig(label_fraction=0.0, label_count=10).labelled_count(1000) == 10


def test_decoder_for_another_model_or_agent_count_is_refused() -> None:
    flam, lam = tiny_model("flam").eval(), tiny_model("lam").eval()
    codes = random_batch(b=1, t=3).codes
    states, actions = decoder_inputs(flam, codes)
    decoder = ActionDecoder(
        DecoderConfig(d_model=16, heads=2), states.shape[-1], actions.shape[-1], AGENTS, 5
    )
    with pytest.raises(ValueError, match="train a decoder for this model"):
        label_actions(lam, decoder, codes[0])
    with pytest.raises(ValueError, match="train a decoder for this latent action model"):
        decoder(states[:, 0], torch.cat([actions[:, 0], actions[:, 0]], dim=-1))
    with pytest.raises(ValueError, match="data of this agent count"):
        decoder.check_model(flam, num_agents=AGENTS + 1)
    with pytest.raises(ValueError, match="true actions"):
        decoder_inputs(tiny_model("wm"), codes)


def test_missing_decoder_files_and_unlabelled_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ActionDecoder\.save"):
        ActionDecoder.load(tmp_path / "nowhere")
    cache = oracle_cache(agents=2, slots=3, episodes=2, length=5, seed=0)
    unlabelled = CodeCache(cache.codes, cache.episode_starts)
    with pytest.raises(ValueError, match="no actions"):
        train_decoder(OracleModel(2, 3), unlabelled, FAST, progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exceeds"):
        cfg = dataclasses.replace(FAST, label_count=100)
        train_decoder(OracleModel(2, 3), cache, cfg, progress=False)  # type: ignore[arg-type]


def test_longer_windows_and_episodes_shorter_than_the_window() -> None:
    model = OracleModel(agents=2, slots=3)
    long = oracle_cache(agents=2, slots=3, episodes=20, length=12, seed=0)
    short = oracle_cache(agents=2, slots=3, episodes=20, length=2, seed=1)
    assert long.actions is not None and short.actions is not None
    cache = CodeCache(
        np.concatenate([long.codes, short.codes]),
        np.concatenate([long.episode_starts, long.episode_starts[-1] + short.episode_starts[1:]]),
        np.concatenate([long.actions, short.actions]),
    )
    cfg = dataclasses.replace(FAST, steps=300)
    decoder, report = train_decoder(model, cache, cfg, window=4, progress=False)  # type: ignore[arg-type]
    assert decoder.window == 4
    assert report.accuracy > 0.95, report
    labels = label_cache(model, decoder, cache)  # type: ignore[arg-type]
    keep = labels[:, 0] >= 0
    assert (labels[keep] == cache.actions[keep]).mean() > 0.95
