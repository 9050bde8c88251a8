"""Slot attention: shapes, competition over slots, permutation symmetry, recursion."""

from __future__ import annotations

import torch

from latentrl.nn.slot_attention import SlotAttention


def test_shapes_and_attention_sums_to_one_over_slots() -> None:
    sa = SlotAttention(num_slots=3, dim=32, d_in=16)
    x = torch.randn(2, 10, 16)
    slots, attn = sa(x, None, iters=3)
    assert slots.shape == (2, 3, 32)
    assert attn.shape == (2, 3, 10)
    assert (attn > 0).all()
    # Slots compete for each input: its weights sum to 1 over slots (+ k * eps).
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(2, 10), atol=1e-6, rtol=0)
    # Not normalised over inputs (that would be the transposed softmax).
    assert not torch.allclose(attn.sum(dim=2), torch.ones(2, 3), atol=1e-3)


def test_initial_slots_are_the_learned_parameter() -> None:
    sa = SlotAttention(num_slots=4, dim=8, d_in=8)
    init = sa.initial(3)
    assert init.shape == (3, 4, 8)
    torch.testing.assert_close(init[2], sa.init_slots)
    # Zero iterations leave given slots untouched.
    given = torch.randn(3, 4, 8)
    out, _ = sa(torch.randn(3, 5, 8), given, iters=0)
    torch.testing.assert_close(out, given)


def test_permuting_inputs_permutes_attention_and_keeps_slots() -> None:
    sa = SlotAttention(num_slots=3, dim=16, d_in=16, logit_scale=5.0)
    x = torch.randn(2, 12, 16)
    perm = torch.randperm(12)
    slots, attn = sa(x, None, iters=2)
    slots_p, attn_p = sa(x[:, perm], None, iters=2)
    torch.testing.assert_close(slots_p, slots, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attn_p, attn[:, :, perm], atol=1e-6, rtol=1e-5)


def test_given_slots_are_the_starting_point() -> None:
    sa = SlotAttention(num_slots=3, dim=16, d_in=16)
    x = torch.randn(2, 8, 16)
    a, _ = sa(x, torch.randn(2, 3, 16), iters=1)
    b, _ = sa(x, torch.randn(2, 3, 16), iters=1)
    assert not torch.allclose(a, b)
    # Swapping the starting slots swaps the results: each slot keeps its identity.
    start = torch.randn(2, 3, 16)
    s1, attn1 = sa(x, start, iters=1)
    s2, attn2 = sa(x, start[:, [2, 0, 1]], iters=1)
    torch.testing.assert_close(s2, s1[:, [2, 0, 1]], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attn2, attn1[:, [2, 0, 1]], atol=1e-6, rtol=1e-5)


def test_logit_scale_sharpens_competition() -> None:
    torch.manual_seed(3)
    flat = SlotAttention(num_slots=4, dim=16, d_in=16, logit_scale=1.0)
    sharp = SlotAttention(num_slots=4, dim=16, d_in=16, logit_scale=20.0)
    sharp.load_state_dict(flat.state_dict())
    x = torch.randn(2, 10, 16)
    _, attn_flat = flat(x, None, iters=1)
    _, attn_sharp = sharp(x, None, iters=1)
    assert attn_sharp.max(dim=1).values.mean() > attn_flat.max(dim=1).values.mean()


def test_the_competition_stays_fp32_under_bf16_autocast() -> None:
    """Under CPU bf16 autocast the slots' attention is computed in fp32 from fp32 keys and
    queries: the first round equals the fp32 module's to float rounding, where bf16 logits at
    the models' sharp scale (10) would differ by whole percent, and let an entity hop between
    nearly tied slots from frame to frame."""
    torch.manual_seed(0)
    sa = SlotAttention(num_slots=12, dim=64, d_in=64, logit_scale=10.0)
    inputs, slots = torch.randn(4, 64, 64), torch.randn(4, 12, 64)
    _, ref = sa(inputs, slots, iters=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, attn = sa(inputs, slots, iters=1)
        q = sa.to_q(sa.norm_slots(slots))
        k = sa.to_k(sa.norm_in(inputs))
        low = (torch.einsum("bkd,bnd->bkn", q, k) * sa.scale).softmax(dim=1)
    assert attn.dtype == torch.float32
    assert (attn - ref).abs().max() < 1e-5
    assert (low.float() + sa.eps - ref).abs().max() > 1e-2  # what bf16 logits would give
