"""The evaluation's rollout sees only its context frame once the latent actions are inferred."""

from __future__ import annotations

import pytest
import torch

from latentrl.evaluation import infer_actions, rollout_from_window, score_windows
from latentrl.models import LatentActionModel
from tests.evaluation.tiny import tiny_tokenizer
from tests.models.tiny import CODEBOOK, KINDS, random_batch, tiny_model

STEPS = 5


def changed_after_first(codes: torch.Tensor, seed: int = 3) -> torch.Tensor:
    """``codes (b, t, n)`` with every code of frames 1.. replaced by a different one."""
    gen = torch.Generator().manual_seed(seed)
    out = codes.clone()
    shift = 1 + torch.randint(0, CODEBOOK - 1, codes[:, 1:].shape, generator=gen)
    out[:, 1:] = (codes[:, 1:] + shift) % CODEBOOK
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_rollout_ignores_future_frames_given_the_same_latent_actions(kind: str) -> None:
    model = tiny_model(kind, action_kind="gaussian").eval()
    batch = random_batch(b=3, t=STEPS + 1)
    with torch.no_grad():
        latent = infer_actions(model, batch)  # the one step allowed to see every frame
        ref = rollout_from_window(model, batch.codes, latent, STEPS)
        perturbed = changed_after_first(batch.codes)
        assert (perturbed[:, 1:] != batch.codes[:, 1:]).all()
        again = rollout_from_window(model, perturbed, latent, STEPS)
    assert ref.shape == (3, STEPS, batch.codes.shape[-1])
    assert torch.equal(again, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_scores_ignore_future_codes_once_actions_are_inferred(kind: str) -> None:
    # The same check one level up: score_windows infers from the batch it is given, so give it
    # the latent actions of the true window as the "prior" and a window whose future codes were
    # changed; the prior rollout must equal the true window's inferred rollout.
    model = tiny_model(kind, action_kind="gaussian").eval()
    tok = tiny_tokenizer()
    batch = random_batch(b=3, t=STEPS + 1)
    frames = torch.rand(3, STEPS + 1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        latent = infer_actions(model, batch)
        true_window = score_windows(model, tok, batch, frames, latent, STEPS)
        perturbed = batch._replace(codes=changed_after_first(batch.codes))
        scores = score_windows(model, tok, perturbed, frames, latent, STEPS)
    assert torch.equal(scores.sampled, true_window.predicted)


def first_prediction(
    model: LatentActionModel, context: torch.Tensor, latent: torch.Tensor
) -> torch.Tensor:
    """The continuous state ``(b, k, d)`` the rollout decodes into its first frame."""
    return model.predict_next(model.encode_states(context).states[:, -1], latent[:, 0])


@pytest.mark.parametrize("kind", ["flam", "lam", "oclam"])
def test_rollout_depends_on_the_context_frame_and_the_actions(kind: str) -> None:
    # Guards the tests above against a rollout that ignores its inputs altogether. An untrained
    # model's argmax codes may not change, so the continuous prediction is compared.
    model = tiny_model(kind, action_kind="gaussian").eval()
    batch = random_batch(b=4, t=STEPS + 1)
    with torch.no_grad():
        latent = infer_actions(model, batch)
        ref = first_prediction(model, batch.codes[:, :1], latent)
        other_context = torch.roll(batch.codes[:, :1], shifts=1, dims=0)
        assert not torch.allclose(first_prediction(model, other_context, latent), ref)
        assert not torch.allclose(first_prediction(model, batch.codes[:, :1], -3 * latent), ref)
        if kind == "flam":
            codes = rollout_from_window(model, batch.codes, latent, STEPS)
            assert not torch.equal(rollout_from_window(model, other_context, latent, STEPS), codes)


def test_rollout_is_deterministic() -> None:
    model = tiny_model("flam").eval()
    batch = random_batch(b=2, t=STEPS + 1)
    with torch.no_grad():
        latent = infer_actions(model, batch)
        first = rollout_from_window(model, batch.codes, latent, STEPS)
        second = rollout_from_window(model, batch.codes, latent, STEPS)
    assert torch.equal(first, second)
