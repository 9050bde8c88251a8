"""The appearance-tracking prior (``slot_track``): tokens prefer the previous slots whose
predicted look they match, the look head learns from its own loss, and re-encoding one frame at
a time (planner, rollouts) gives what encoding the window does."""

from __future__ import annotations

import pytest
import torch

from latentrl.models.config import ModelConfig
from latentrl.models.slots import Factorizer
from tests.models.tiny import random_batch, tiny_model


def _factorizer(d: int, seed_dim: int, track: float = 0.05) -> Factorizer:
    cfg = ModelConfig(d_model=d, num_slots=3, slot_track=track, slot_init="learned")
    return Factorizer(cfg, seed_dim)


def test_tokens_prefer_the_slot_whose_look_they_match() -> None:
    fac = _factorizer(d=4, seed_dim=4)
    assert fac.look is not None
    with torch.no_grad():  # the look head reads a slot's look off its first channels
        fac.look.weight.copy_(torch.eye(4))
        fac.look.bias.zero_()
    looks = torch.eye(4)[:3]  # three slots, three distinct looks
    prev = looks[None]  # (1, 3, 4)
    tokens = torch.eye(4)[torch.tensor([2, 0, 1, 1, 0])][None]  # (1, 5, 4) seed features
    prior = fac.track_prior(prev, tokens)
    assert prior.shape == (1, 3, 5)
    assert prior.argmax(dim=1).tolist() == [[2, 0, 1, 1, 0]]


def test_the_look_head_learns_what_its_slot_holds() -> None:
    torch.manual_seed(0)
    fac = _factorizer(d=8, seed_dim=5)
    slots = torch.randn(16, 3, 8)
    attn = torch.rand(16, 3, 6).softmax(dim=1)
    feats = torch.randn(16, 6, 5)
    opt = torch.optim.Adam(fac.parameters(), lr=1e-2)
    first = fac.look_loss(slots, attn, feats).item()
    for _ in range(200):
        loss = fac.look_loss(slots, attn, feats)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("kind", ["flam", "oclam"])
def test_tracking_models_train_the_look_and_reencode_as_they_encode(kind: str) -> None:
    model = tiny_model(kind, slot_track=0.05).eval()
    batch = random_batch(t=3)
    loss, metrics = model.loss(batch)
    assert torch.isfinite(loss) and "look_loss" in metrics
    loss.backward()
    assert model.factorizer.look is not None and model.factorizer.look.weight.grad is not None
    with torch.no_grad():
        states = model.encode_states(batch.codes).states
        again = model.encode_next(batch.codes[:, 2], states[:, 1])
    torch.testing.assert_close(again, states[:, 2])


def test_the_prior_changes_the_encoding_of_later_frames_only() -> None:
    batch = random_batch(t=3)
    plain, track = tiny_model("flam", seed=0), tiny_model("flam", seed=0, slot_track=0.05)
    track.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        a, b = plain.encode_states(batch.codes).states, track.encode_states(batch.codes).states
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1:], b[:, 1:])


def test_a_negative_temperature_is_refused() -> None:
    with pytest.raises(ValueError, match="slot_track"):
        _factorizer(d=4, seed_dim=4, track=-1.0)
