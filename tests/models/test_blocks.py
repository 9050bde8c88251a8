"""Attention blocks and the IMPALA CNN: shapes, masks, and the residual structure."""

from __future__ import annotations

import pytest
import torch

from latentrl.nn.blocks import MLP, Attention, CrossBlock, SelfBlock
from latentrl.nn.impala import ImpalaDecoder, ImpalaEncoder, ResidualBlock


def test_attention_shapes_and_head_check() -> None:
    attn = Attention(32, 2)
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    assert attn(x, ctx).shape == (2, 5, 32)
    with pytest.raises(ValueError, match="not divisible"):
        Attention(30, 4)


def test_attention_matches_manual_softmax() -> None:
    attn = Attention(8, 2)
    x, ctx = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    q = attn.to_q(x).view(1, 3, 2, 4).transpose(1, 2)
    k, v = attn.to_kv(ctx).view(1, 4, 2, 2, 4).permute(2, 0, 3, 1, 4)
    w = (q @ k.transpose(-1, -2) / 4**0.5).softmax(-1)
    manual = attn.out((w @ v).transpose(1, 2).reshape(1, 3, 8))
    torch.testing.assert_close(attn(x, ctx), manual, atol=1e-6, rtol=1e-5)


def test_causal_mask_hides_the_future() -> None:
    block = SelfBlock(32, 2)
    x = torch.randn(2, 6, 32)
    mask = torch.ones(6, 6, dtype=torch.bool).tril()
    y = block(x, mask)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 32)
    y2 = block(x2, mask)
    assert y.shape == (2, 6, 32)
    torch.testing.assert_close(y[:, :4], y2[:, :4])
    assert not torch.allclose(y[:, 4:], y2[:, 4:])
    # Without the mask the first position sees the change.
    assert not torch.allclose(block(x)[:, 0], block(x2)[:, 0])


def test_cross_block_reads_context_per_query() -> None:
    block = CrossBlock(32, 2)
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 3, 32)
    y = block(x, ctx)
    assert y.shape == (2, 5, 32)
    # Queries are independent of one another: one query alone gives the same row.
    torch.testing.assert_close(block(x[:, 2:3], ctx), y[:, 2:3], atol=1e-6, rtol=1e-5)
    # And the context order does not matter (no positions in cross-attention).
    torch.testing.assert_close(block(x, ctx.flip(1)), y, atol=1e-6, rtol=1e-5)


def test_mlp_shape() -> None:
    assert MLP(16, mult=3)(torch.randn(4, 16)).shape == (4, 16)
    assert MLP(16, mult=3)[0].out_features == 48


def test_impala_encoder_decoder_shapes() -> None:
    enc = ImpalaEncoder(3, (4, 8), 6)
    dec = ImpalaDecoder(6, (4, 8), 3)
    x = torch.rand(2, 3, 16, 16)
    z = enc(x)
    assert z.shape == (2, 6, 4, 4)
    assert dec(z).shape == (2, 3, 16, 16)


def test_residual_block_is_identity_with_zero_convs() -> None:
    block = ResidualBlock(4)
    for p in block.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(block(x), x)
