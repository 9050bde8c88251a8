"""Merged state tokens of the token-level models (``scene_patch``): shapes, what a merged token
holds, causality, and the configurations refused."""

from __future__ import annotations

import pytest
import torch

from latentrl.models import ModelConfig
from latentrl.nn.patches import patch_merge
from tests.models.causality_helpers import changed_from, next_frame_logits
from tests.models.tiny import CODEBOOK, GRID, TOKENS, random_batch, tiny_model


def test_patch_merge_groups_neighbouring_cells() -> None:
    merge = patch_merge(dim=1, grid=4, patch=2)
    proj = merge[1]
    assert isinstance(proj, torch.nn.Linear)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 1000.0]]))
        proj.bias.zero_()
    # Token i holds the value i; the merged token of the top-left 2x2 block reads cells
    # 0, 1 (first row) and 4, 5 (second row), in that order.
    tokens = torch.arange(16.0).reshape(1, 16, 1)
    out = merge(tokens)
    assert out.shape == (1, 4, 1)
    assert out[0, 0, 0].item() == 0 * 1 + 1 * 10 + 4 * 100 + 5 * 1000
    assert out[0, 3, 0].item() == 10 * 1 + 11 * 10 + 14 * 100 + 15 * 1000


@pytest.mark.parametrize("kind", ["lam", "wm"])
def test_merged_models_keep_the_interface(kind: str) -> None:
    model = tiny_model(kind, scene_patch=2)
    batch = random_batch(b=2, t=4)
    states = model.encode_states(batch.codes).states
    assert states.shape == (2, 4, TOKENS // 4, 32)
    latent = model.infer(states, batch.actions)
    nxt = model.predict_next(states[:, 0], latent.actions[:, 0])
    assert nxt.shape == (2, TOKENS // 4, 32)
    loss, _ = model.loss(batch)
    loss.backward()
    assert model.patch_merge is not None and model.patch_merge[1].weight.grad is not None
    model.eval()
    frames = model.rollout(batch.codes[:, :2], latent.actions, steps=3)
    assert frames.shape == (2, 3, TOKENS) and frames.min() >= 0 and frames.max() < CODEBOOK


def test_merged_lam_prediction_ignores_later_frames() -> None:
    model = tiny_model("lam", scene_patch=2).eval()
    batch = random_batch(b=2, t=4)
    with torch.no_grad():
        ref = next_frame_logits(model, batch)
        torch.testing.assert_close(next_frame_logits(model, changed_from(batch, 2)), ref)
        assert not torch.allclose(next_frame_logits(model, changed_from(batch, 0)), ref)


def test_unmerged_models_have_no_merge_weights() -> None:
    names = {n for n, _ in tiny_model("lam").named_parameters()}
    assert not any(n.startswith("patch_merge") for n in names)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "lam", "scene_patch": 3}, "does not divide"),
        ({"model": "lam", "scene_patch": 0}, "does not divide"),
        ({"model": "flam", "scene_patch": 2}, "token-level models"),
        ({"model": "lapo", "scene_patch": 2}, "token-level models"),
    ],
)
def test_refused_patch_settings(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(grid=GRID, **changes)  # type: ignore[arg-type]
