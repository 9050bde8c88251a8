"""Every latent action model's interface: shapes of states, actions, predictions, rollouts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from latentrl.models import FLAM, LAM, LAPO, MODELS, OCLAM, WM, build_model
from latentrl.models.base import LatentActionModel, codes_used
from tests.models.tiny import (
    ACTIONS,
    AGENTS,
    CODEBOOK,
    KINDS,
    SLOTS,
    TOKENS,
    code_features,
    near_uniform,
    random_batch,
    tiny_config,
    tiny_model,
)

# (states per frame, latent actions per transition, latent action dim)
EXPECTED = {
    "flam": (SLOTS, SLOTS, 1),
    "lam": (TOKENS, 1, 1),
    "lapo": (TOKENS, 1, 1),
    "oclam": (SLOTS, 1, 1),
    "wm": (TOKENS, 1, AGENTS * ACTIONS),
}


def test_build_model_picks_the_class() -> None:
    assert MODELS == {"flam": FLAM, "lam": LAM, "lapo": LAPO, "oclam": OCLAM, "wm": WM}
    for kind, cls in MODELS.items():
        model = build_model(tiny_config(kind), code_features())
        assert type(model) is cls
        assert isinstance(model, LatentActionModel)
        assert model.config.factored == (kind == "flam")
    with pytest.raises(ValueError, match="unknown model"):
        build_model(tiny_config("vae"), code_features())  # type: ignore[arg-type]


def test_code_feature_table_must_match_the_config() -> None:
    with pytest.raises(ValueError, match="does not match"):
        build_model(tiny_config("lam"), torch.randn(CODEBOOK, 5))


@pytest.mark.parametrize("kind", KINDS)
def test_interface_shapes(kind: str) -> None:
    k, k_act, d_a = EXPECTED[kind]
    model = tiny_model(kind)
    batch = random_batch(b=2, t=4)
    encoded = model.encode_states(batch.codes)
    # Positional FLAM slots carry their centroid (row, col) in 2 extra channels.
    width = 34 if model.config.positional else 32
    assert encoded.states.shape == (2, 4, k, width)
    if kind in ("flam", "oclam"):
        assert encoded.attn is not None and encoded.attn.shape == (2, 4, SLOTS, TOKENS)
        torch.testing.assert_close(encoded.attn.sum(2), torch.ones(2, 4, TOKENS), atol=1e-6, rtol=0)
    else:
        assert encoded.attn is None
    latent = model.infer(encoded.states, batch.actions)
    assert latent.actions.shape == (2, 3, k_act, d_a)
    assert latent.aux_loss.shape == ()
    if kind == "wm":
        assert latent.indices is None
    else:
        assert latent.indices is not None and latent.indices.shape == (2, 3, k_act)
    nxt = model.predict_next(encoded.states[:, 0], latent.actions[:, 0])
    assert nxt.shape == (2, k, width)
    state = model.encode_next(batch.codes[:, 1], encoded.states[:, 0])
    assert state.shape == (2, k, width)
    torch.testing.assert_close(state, encoded.states[:, 1], atol=1e-6, rtol=1e-5)
    sampled = model.sample_latent_actions(2, 5, torch.Generator().manual_seed(0))
    assert sampled.shape == (2, 5, k_act, d_a)
    model.eval()
    frames = model.rollout(batch.codes[:, :2], sampled, steps=3)
    assert frames.shape == (2, 3, TOKENS) and frames.dtype == torch.long
    assert frames.min() >= 0 and frames.max() < CODEBOOK
    assert model.rollout(batch.codes[:, :2], sampled).shape == (2, 5, TOKENS)
    with pytest.raises(ValueError, match="latent actions given"):
        model.rollout(batch.codes[:, :2], sampled, steps=6)
    inferred = model.infer_latent_actions(batch.codes, batch.actions)
    assert inferred.actions.shape == (2, 3, k_act, d_a)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("aggregator", ["parallel", "autoregressive"])
def test_loss_is_a_finite_scalar_with_metrics(kind: str, aggregator: str) -> None:
    model = tiny_model(kind, aggregator=aggregator, pred_steps=2)
    loss, metrics = model.loss(random_batch(b=2, t=4))
    assert loss.shape == ()
    for step in (1, 2):
        assert near_uniform(metrics[f"token_ce_step{step}"].item()), metrics
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert {"aux_loss", "pred_loss_step1", "pred_loss_step2"} <= set(metrics)
    # Detached 0-dim tensors (no device sync per step); the training loop reads them at logs.
    assert all(isinstance(v, torch.Tensor) and v.shape == () for v in metrics.values())
    assert not any(v.requires_grad for v in metrics.values())
    values = {k: v.item() for k, v in metrics.items()}
    extra = values.get("recon_loss", 0.0) * model.config.recon_weight
    expected = (
        values["aux_loss"] + (values["pred_loss_step1"] + values["pred_loss_step2"]) / 2 + extra
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert ("recon_loss" in metrics) == (kind == "oclam")
    assert ("action_codes_used" in metrics) == (kind != "wm")


def test_loss_needs_two_frames() -> None:
    batch = random_batch(b=2, t=2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        tiny_model("lam").loss(batch._replace(codes=batch.codes[:, :1]))


def test_pred_steps_are_capped_by_the_window() -> None:
    _, metrics = tiny_model("lam", pred_steps=5).loss(random_batch(b=2, t=3))
    assert "pred_loss_step2" in metrics and "pred_loss_step3" not in metrics


def test_token_weights_upweight_changed_tokens() -> None:
    model = tiny_model("lam", changed_weight=7.0)
    prev = torch.tensor([[1, 2, 3, 4]])
    target = torch.tensor([[1, 0, 3, 0]])
    torch.testing.assert_close(model.token_weights(prev, target), torch.tensor([[1.0, 7, 1, 7]]))


def test_one_step_loss_is_the_weighted_aggregator_loss() -> None:
    model = tiny_model("lam", changed_weight=3.0)
    batch = random_batch(b=2, t=2)
    loss, _ = model.loss(batch)
    states = model.encode_states(batch.codes).states
    latent = model.infer(states, None)
    nxt = model.predict_next(states[:, 0], latent.actions[:, 0])
    weights = model.token_weights(batch.codes[:, 0], batch.codes[:, 1])
    ref, _ = model.aggregator.loss(nxt, batch.codes[:, 1], weights)
    torch.testing.assert_close(loss, ref + latent.aux_loss)


def test_wm_uses_one_hot_true_actions() -> None:
    model = tiny_model("wm")
    acts = torch.tensor([[[0, 4], [2, 1]]])  # (b=1, t=2, a=2)
    enc = model.encode_actions(acts)
    expected = torch.cat([F.one_hot(acts[..., 0], 5), F.one_hot(acts[..., 1], 5)], -1).float()
    torch.testing.assert_close(enc, expected[:, :, None])
    # Unlabelled transitions (-1) encode like action 0 rather than crashing.
    torch.testing.assert_close(
        model.encode_actions(torch.tensor([[[-1, 0]]]))[..., :5], enc[:, :1, :, :5]
    )
    with pytest.raises(ValueError, match="true actions"):
        model.infer(torch.zeros(1, 2, TOKENS, 32), None)
    with pytest.raises(ValueError, match="built for 2 agents"):
        model.encode_actions(torch.zeros(1, 2, 3, dtype=torch.long))


@pytest.mark.parametrize("kind", ["flam", "lam", "oclam"])
@pytest.mark.parametrize("action_kind", ["gaussian", "sparse"])
def test_continuous_bottlenecks(kind: str, action_kind: str) -> None:
    model = tiny_model(kind, action_kind=action_kind, action_dim=4)
    _, k_act, _ = EXPECTED[kind]
    loss, metrics = model.loss(random_batch(b=2, t=3))
    # The bottleneck's regulariser is positive and enters the loss beside the prediction.
    assert metrics["aux_loss"] > 0 and near_uniform(metrics["token_ce_step1"].item())
    recon = metrics.get("recon_loss", torch.tensor(0.0)) * model.config.recon_weight
    expected = metrics["aux_loss"] + metrics["pred_loss_step1"] + recon
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert "action_codes_used" not in metrics
    latent = model.infer_latent_actions(random_batch(b=2, t=3).codes)
    assert latent.indices is None and latent.actions.shape == (2, 2, k_act, 4)
    assert model.sample_latent_actions(3, 2).shape == (3, 2, k_act, 4)


def test_codes_used_counts_distinct_codes_as_unique_does() -> None:
    gen = torch.Generator().manual_seed(0)
    for n in (1, 5, 9):
        idx = torch.randint(0, n, (4, 3, 5), generator=gen)
        assert codes_used(idx, n).item() == idx.unique().numel()
    assert codes_used(torch.tensor([[3, 3, 0], [8, 0, 3]]), 9).item() == 3
