"""Positional FLAM slots and the gauss readout: centroids, motion, Gaussian mixing per patch."""

from __future__ import annotations

import pytest
import torch

from latentrl.nn.aggregator import Aggregator
from tests.models.tiny import (
    GRID,
    TOKENS,
    code_features,
    near_uniform,
    random_batch,
    tiny_config,
    tiny_model,
)


def gauss_aggregator(mode: str = "parallel") -> Aggregator:
    return Aggregator(
        32, 2, TOKENS, code_features(), (4, 4), mode=mode, readout="gauss", pos_channels=2
    )  # type: ignore[arg-type]


def test_readout_auto_resolves_per_model() -> None:
    assert tiny_config("flam").resolved_readout == "gauss"
    assert tiny_config("flam", pos_slots=False).resolved_readout == "xattn"
    for kind in ("lam", "oclam", "wm"):
        assert tiny_config(kind).resolved_readout == "xattn"
        assert not tiny_config(kind).positional
    with pytest.raises(ValueError, match="gauss needs slot centroids"):
        _ = tiny_config("lam", readout="gauss").resolved_readout


def test_gauss_readout_needs_positions() -> None:
    with pytest.raises(ValueError, match="gauss readout needs"):
        Aggregator(32, 2, TOKENS, code_features(), (4, 4), readout="gauss")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["parallel", "autoregressive"])
def test_gauss_readout_shapes_loss_and_generate(mode: str) -> None:
    agg = gauss_aggregator(mode)
    ctx = torch.cat([torch.randn(2, 3, 32), torch.rand(2, 3, 2) * (GRID - 1)], dim=-1)
    targets = torch.randint(0, 16, (2, TOKENS))
    loss, _ = agg.loss(ctx, targets)
    loss.backward()
    assert near_uniform(loss.item())
    # The Gaussian mixture over slots is in the graph: its widths and biases get a gradient.
    assert agg.g_logsig.weight.grad.abs().sum() > 0 and agg.g_bias.weight.grad.abs().sum() > 0
    codes = agg.generate(ctx)
    assert codes.shape == (2, TOKENS)


def test_gauss_weights_are_a_softmax_over_slots_peaked_at_the_centre() -> None:
    agg = gauss_aggregator()
    with torch.no_grad():
        agg.g_logsig.weight.zero_()
        agg.g_logsig.bias.fill_(-2.0)  # narrow kernels
        agg.g_bias.weight.zero_()
        agg.g_bias.bias.zero_()
    centers = torch.tensor([[[0.0, 0.0], [3.0, 2.0]]])
    ctx = torch.cat([torch.randn(1, 2, 32), centers], dim=-1)
    w = agg.gauss_weights(ctx)
    torch.testing.assert_close(w.sum(1), torch.ones(1, TOKENS))
    assert w[0, 0, 0] > 0.99 and w[0, 1, 3 * GRID + 2] > 0.99
    # Moving a centre moves the gradient onto its position: the loss depends on the centres.
    ctx.requires_grad_(True)
    agg.loss(ctx, torch.randint(0, 16, (1, TOKENS)))[0].backward()
    assert ctx.grad is not None and ctx.grad[..., -2:].abs().sum() > 0


def test_positional_states_carry_the_attention_centroid() -> None:
    model = tiny_model("flam").eval()
    codes = random_batch(b=2, t=3).codes
    with torch.no_grad():
        enc = model.encode_states(codes)
    w = enc.attn / enc.attn.sum(-1, keepdim=True)
    rows = torch.arange(TOKENS) // GRID
    cols = torch.arange(TOKENS) % GRID
    torch.testing.assert_close(enc.states[..., -2], (w * rows).sum(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(enc.states[..., -1], (w * cols).sum(-1), atol=1e-5, rtol=1e-5)


def test_predicted_move_reads_only_the_action() -> None:
    model = tiny_model("flam").eval()  # move_input="action"
    codes = random_batch(b=2, t=2).codes
    with torch.no_grad():
        states = model.encode_states(codes).states[:, 0]
        actions = model.infer(model.encode_states(codes).states, None).actions[:, 0]
        nxt = model.predict_next(states, actions)
        other = states.clone()
        other[..., :-2] = torch.randn_like(other[..., :-2])
        moved = model.predict_next(other, actions)
    # Centroid move depends on the slot's latent action alone, not on (history in) its state.
    torch.testing.assert_close(nxt[..., -2:] - states[..., -2:], moved[..., -2:] - other[..., -2:])


def test_idm_sees_the_centroid_displacement() -> None:
    model = tiny_model("flam", action_kind="gaussian").eval()
    codes = random_batch(b=2, t=2).codes
    with torch.no_grad():
        states = model.encode_states(codes).states
        shifted = states.clone()
        shifted[:, 1, :, -2:] += 1.0  # same slot vectors, centroids one cell further
        a = model.infer(states, None).actions
        b = model.infer(shifted, None).actions
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("readout", ["xattn", "mix"])
def test_positional_slots_work_with_other_readouts(readout: str) -> None:
    model = tiny_model("flam", readout=readout)
    loss, metrics = model.loss(random_batch(b=2, t=3))
    loss.backward()
    assert near_uniform(metrics["token_ce_step1"].item())
    # The prediction depends on the latent actions: the IDM gets a gradient.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.idm.parameters())


def test_sincos_position_table_separates_every_token() -> None:
    from latentrl.models.base import sincos_2d

    for grid, dim in ((8, 64), (4, 32), (5, 30)):
        table = sincos_2d(grid, dim)
        assert table.shape == (grid * grid, dim)
        dist = torch.cdist(table, table) + torch.eye(grid * grid)
        assert dist.min() > 0.1  # no two tokens share a position code
    model = tiny_model("lam", pos_init="small")
    assert model.token_pos.abs().max() < 0.2
