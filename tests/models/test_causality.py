"""Causality (the prediction of frame t+1 ignores frames after it) and slot recursion."""

from __future__ import annotations

import pytest
import torch

from latentrl.types import CodeBatch
from tests.models.causality_helpers import changed_from, next_frame_logits
from tests.models.tiny import CODEBOOK, random_batch, tiny_model


@pytest.mark.parametrize("kind", ["flam", "lam", "oclam"])
@pytest.mark.parametrize("action_kind", ["fsq", "gaussian"])
def test_prediction_of_next_frame_ignores_later_frames(kind: str, action_kind: str) -> None:
    model = tiny_model(kind, action_kind=action_kind).eval()
    batch = random_batch(b=2, t=4)
    with torch.no_grad():
        ref = next_frame_logits(model, batch)
        torch.testing.assert_close(next_frame_logits(model, changed_from(batch, 2)), ref)
        torch.testing.assert_close(next_frame_logits(model, changed_from(batch, 3)), ref)


@pytest.mark.parametrize("kind", ["flam", "lam", "oclam"])
def test_prediction_of_next_frame_depends_on_it(kind: str) -> None:
    # Continuous (eval: the mean) latent actions, so any change of frame 1 reaches the logits.
    model = tiny_model(kind, action_kind="gaussian").eval()
    batch = random_batch(b=2, t=4)
    with torch.no_grad():
        ref = next_frame_logits(model, batch)
        assert not torch.allclose(next_frame_logits(model, changed_from(batch, 1)), ref)
        assert not torch.allclose(next_frame_logits(model, changed_from(batch, 0)), ref)


def test_wm_prediction_depends_on_the_true_action_only_at_t() -> None:
    model = tiny_model("wm").eval()
    batch = random_batch(b=2, t=4)
    with torch.no_grad():
        ref = next_frame_logits(model, batch)
        torch.testing.assert_close(next_frame_logits(model, changed_from(batch, 1)), ref)
        later = batch.actions.clone()
        later[:, 1:] = (later[:, 1:] + 1) % 5
        torch.testing.assert_close(next_frame_logits(model, batch._replace(actions=later)), ref)
        now = batch.actions.clone()
        now[:, 0] = (now[:, 0] + 1) % 5
        assert not torch.allclose(next_frame_logits(model, batch._replace(actions=now)), ref)


@pytest.mark.parametrize("kind", ["flam", "oclam"])
def test_states_and_actions_are_causal_in_time(kind: str) -> None:
    model = tiny_model(kind, action_kind="gaussian").eval()
    batch = random_batch(b=2, t=4)
    with torch.no_grad():
        states = model.encode_states(batch.codes).states
        later = model.encode_states(changed_from(batch, 2).codes).states
        torch.testing.assert_close(later[:, :2], states[:, :2])
        assert not torch.allclose(later[:, 2], states[:, 2])
        acts = model.infer(states, None).actions
        acts_later = model.infer(later, None).actions
        torch.testing.assert_close(acts_later[:, 0], acts[:, 0])
        assert not torch.allclose(acts_later[:, 1], acts[:, 1])


@pytest.mark.parametrize("kind", ["flam", "lam", "oclam"])
def test_per_step_loss_ignores_later_frames(kind: str) -> None:
    # The one-step loss of a 2-frame window equals the loss of its first transition.
    model = tiny_model(kind).eval()
    batch = random_batch(b=2, t=4)
    short = CodeBatch(batch.codes[:, :2])
    with torch.no_grad():
        a, _ = model.loss(short)
        b, _ = model.loss(CodeBatch(changed_from(batch, 2).codes[:, :2]))
    torch.testing.assert_close(a, b)


def test_flam_window_equals_step_by_step_factorizer() -> None:
    model = tiny_model("flam", slot_iters_first=3, slot_iters=1, pos_slots=False).eval()
    codes = random_batch(b=2, t=4).codes
    with torch.no_grad():
        window = model.encode_states(codes)
        tokens = model.embed_tokens(codes)
        seeds = model.seed_features(codes)
        prev = None
        for i in range(4):
            slots, attn = model.factorizer.step(tokens[:, i], prev, seeds[:, i])
            torch.testing.assert_close(window.states[:, i], slots)
            torch.testing.assert_close(window.attn[:, i], attn)
            prev = slots
        # Frame 1 refines frame 0's slots for slot_iters rounds, not the learned init.
        sa = model.factorizer.slot_attention
        direct, _ = sa(tokens[:, 1], window.states[:, 0], 1)
        torch.testing.assert_close(window.states[:, 1], direct)
        fresh, _ = sa(tokens[:, 1], None, 3, seeds[:, 1])
        assert not torch.allclose(window.states[:, 1], fresh)


@pytest.mark.parametrize("kind", ["flam", "oclam"])
def test_recursive_init_carries_slots_across_frames(kind: str) -> None:
    batch = random_batch(b=2, t=3)
    other = batch.codes.clone()
    other[:, 0] = torch.randint(0, CODEBOOK, other[:, 0].shape)
    for recursive in (True, False):
        model = tiny_model(kind, recursive_init=recursive, pos_slots=False).eval()
        with torch.no_grad():
            a = model.encode_states(batch.codes).states
            b = model.encode_states(other).states
        assert not torch.allclose(a[:, 0], b[:, 0])
        if recursive:
            assert not torch.allclose(a[:, 1], b[:, 1])
        else:
            # Without recursion each frame starts from the learned init: frame 0 is irrelevant.
            torch.testing.assert_close(a[:, 1:], b[:, 1:])
            sa = model.factorizer.slot_attention
            with torch.no_grad():
                alone, _ = sa(
                    model.embed_tokens(batch.codes[:, 1]),
                    None,
                    model.config.slot_iters_first,
                    model.seed_features(batch.codes[:, 1]),
                )
            torch.testing.assert_close(a[:, 1], alone)


def test_rollout_reencodes_from_the_previous_slots() -> None:
    model = tiny_model("flam", pos_slots=False).eval()
    batch = random_batch(b=2, t=3)
    actions = model.sample_latent_actions(2, 2, torch.Generator().manual_seed(0))
    frames = model.rollout(batch.codes[:, :2], actions)
    # Replay by hand: predict, decode, re-encode with the previous slots as init.
    with torch.no_grad():
        state = model.encode_states(batch.codes[:, :2]).states[:, -1]
        for i in range(2):
            codes = model.aggregator.generate(model.predict_next(state, actions[:, i]))
            torch.testing.assert_close(frames[:, i], codes)
            state = model.factorizer.step(model.embed_tokens(codes), state)[0]


def test_positional_rollout_reencodes_from_the_previous_slots() -> None:
    model = tiny_model("flam").eval()
    assert model.config.positional and model.config.resolved_readout == "gauss"
    batch = random_batch(b=2, t=3)
    actions = model.sample_latent_actions(2, 2, torch.Generator().manual_seed(0))
    frames = model.rollout(batch.codes[:, :2], actions)
    with torch.no_grad():
        state = model.encode_states(batch.codes[:, :2]).states[:, -1]
        for i in range(2):
            codes = model.aggregator.generate(model.predict_next(state, actions[:, i]))
            torch.testing.assert_close(frames[:, i], codes)
            slots, attn = model.factorizer.step(model.embed_tokens(codes), state[..., :-2])
            state = torch.cat([slots, model.centroid(attn)], dim=-1)


def test_token_models_roll_out_from_the_last_context_frame_only() -> None:
    model = tiny_model("lam").eval()
    codes = random_batch(b=2, t=3).codes
    actions = model.sample_latent_actions(2, 2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.rollout(codes, actions), model.rollout(codes[:, -1:], actions))
