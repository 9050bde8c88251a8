"""The aggregator: every mode x readout x prediction, sub-token codes, AR teacher forcing."""

from __future__ import annotations

import itertools

import pytest
import torch

from latentrl.nn.aggregator import Aggregator, join_codes, split_codes
from tests.models.tiny import CODEBOOK, TOKENS, code_features, near_uniform

COMBOS = list(
    itertools.product(
        ("parallel", "autoregressive"), ("xattn", "mix"), ("classification", "regression")
    )
)


def make(mode: str = "parallel", readout: str = "xattn", prediction: str = "classification"):
    return Aggregator(
        32,
        2,
        TOKENS,
        code_features(),
        (4, 4),
        mode=mode,  # type: ignore[arg-type]
        readout=readout,  # type: ignore[arg-type]
        prediction=prediction,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("mode", "readout", "prediction"), COMBOS)
def test_shapes_loss_and_generate(mode: str, readout: str, prediction: str) -> None:
    agg = make(mode, readout, prediction)
    ctx = torch.randn(2, 3, 32)
    targets = torch.randint(0, CODEBOOK, (2, TOKENS))
    h = agg.hidden(ctx, targets)
    assert h.shape == (2, TOKENS, 32)
    loss, metrics = agg.loss(ctx, targets)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(metrics["token_loss"].item(), rel=1e-5)
    if prediction == "regression":
        # The squared distance of the predicted feature to the target code's feature.
        by_hand = (agg.to_feature(h) - code_features()[targets]).square().mean()
        assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5) and loss.item() > 0
    if prediction == "classification":
        logits = agg.level_logits(h, split_codes(targets, agg.levels))
        assert [tuple(lg.shape) for lg in logits] == [(2, TOKENS, 4), (2, TOKENS, 4)]
        # Near-uniform at init: CE of two 4-way choices is about 2 log 4.
        assert near_uniform(loss.item())
    codes = agg.generate(ctx)
    assert codes.shape == (2, TOKENS) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < CODEBOOK


def test_subtoken_levels_must_multiply_to_the_codebook() -> None:
    with pytest.raises(ValueError, match="multiply to 12"):
        Aggregator(32, 2, TOKENS, code_features(), (4, 3))
    # Empty sub-tokens mean one flat choice over the whole codebook.
    flat = Aggregator(32, 2, TOKENS, code_features(), ())
    assert flat.levels == (CODEBOOK,)


@pytest.mark.parametrize("levels", [(4, 4), (2, 3, 5), (16,)])
def test_split_join_round_trip(levels: tuple[int, ...]) -> None:
    size = 1
    for lv in levels:
        size *= lv
    codes = torch.arange(size).view(1, -1)
    parts = split_codes(codes, levels)
    assert len(parts) == len(levels)
    for part, lv in zip(parts, levels, strict=True):
        assert part.min() >= 0 and part.max() == lv - 1
    torch.testing.assert_close(join_codes(parts, levels), codes)
    # Distinct codes have distinct digit tuples.
    assert len({tuple(int(p[0, i]) for p in parts) for i in range(size)}) == size


def test_split_codes_most_significant_first() -> None:
    assert [int(p) for p in split_codes(torch.tensor(7), (4, 4))] == [1, 3]
    assert [int(p) for p in split_codes(torch.tensor(29), (2, 3, 5))] == [1, 2, 4]


def test_weighted_loss_is_the_mean_of_weighted_per_token_ce() -> None:
    agg = make()
    ctx = torch.randn(2, 3, 32)
    targets = torch.randint(0, CODEBOOK, (2, TOKENS))
    weights = torch.rand(2, TOKENS) + 0.5
    h = agg.hidden(ctx, targets)
    parts = split_codes(targets, agg.levels)
    per_token = sum(
        -lg.log_softmax(-1).gather(-1, p[..., None])[..., 0]
        for lg, p in zip(agg.level_logits(h, parts), parts, strict=True)
    )
    loss, metrics = agg.loss(ctx, targets, weights)
    expected = (per_token * weights).mean()
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-5)
    assert metrics["token_loss"].item() == pytest.approx(per_token.mean().item(), rel=1e-5)


def test_later_levels_are_conditioned_on_earlier_ones() -> None:
    agg = make()
    h = torch.randn(2, TOKENS, 32)
    a = torch.zeros(2, TOKENS, dtype=torch.long)
    first_a, second_a = agg.level_logits(h, [a, a])
    first_b, second_b = agg.level_logits(h, [a + 1, a])
    torch.testing.assert_close(first_a, first_b)
    assert not torch.allclose(second_a, second_b)


@pytest.mark.parametrize("readout", ["xattn", "mix"])
def test_autoregressive_true_prefix_equals_teacher_forcing(readout: str) -> None:
    agg = make("autoregressive", readout)
    ctx = torch.randn(2, 3, 32)
    targets = torch.randint(0, CODEBOOK, (2, TOKENS))
    parts = split_codes(targets, agg.levels)
    forced = agg.hidden(ctx, targets)
    forced_logits = agg.level_logits(forced, parts)
    for i in range(TOKENS):
        # Position i fed the true codes of positions < i, one position at a time.
        h = agg._read(agg._queries(ctx, targets[:, :i]), ctx)[:, -1:]
        torch.testing.assert_close(h, forced[:, i : i + 1], atol=1e-5, rtol=1e-4)
        logits = agg.level_logits(h, [p[:, i : i + 1] for p in parts])
        for lg, full in zip(logits, forced_logits, strict=True):
            torch.testing.assert_close(lg, full[:, i : i + 1], atol=1e-5, rtol=1e-4)


def test_autoregressive_position_sees_only_earlier_codes() -> None:
    agg = make("autoregressive")
    ctx = torch.randn(2, 3, 32)
    targets = torch.randint(0, CODEBOOK, (2, TOKENS))
    changed = targets.clone()
    changed[:, 5] = (changed[:, 5] + 1) % CODEBOOK
    h, h2 = agg.hidden(ctx, targets), agg.hidden(ctx, changed)
    torch.testing.assert_close(h[:, :6], h2[:, :6])
    assert not torch.allclose(h[:, 6], h2[:, 6])


def test_autoregressive_generation_is_a_fixed_point_of_teacher_forcing() -> None:
    agg = make("autoregressive").eval()
    ctx = torch.randn(2, 3, 32)
    codes = agg.generate(ctx)
    with torch.no_grad():
        again = agg._decode_hidden(agg.hidden(ctx, codes))
    torch.testing.assert_close(again, codes)


def test_parallel_generate_is_the_argmax_of_the_logits() -> None:
    agg = make("parallel").eval()
    ctx = torch.randn(2, 3, 32)
    codes = agg.generate(ctx)
    with torch.no_grad():
        h = agg.hidden(ctx)
        first = agg.heads[0](h).argmax(-1)
        second = agg.heads[1](h + agg.level_embed[0](first)).argmax(-1)
    torch.testing.assert_close(codes, first * 4 + second)


def test_regression_decodes_to_the_nearest_code() -> None:
    agg = make(prediction="regression").eval()
    with torch.no_grad():
        # Make the feature head output the code features of chosen codes exactly.
        agg.to_feature.weight.zero_()
        agg.to_feature.bias.copy_(agg.code_features[11])
    codes = agg.generate(torch.randn(2, 3, 32))
    assert (codes == 11).all()
    loss, _ = agg.loss(torch.randn(2, 3, 32), torch.full((2, TOKENS), 11))
    assert loss.item() == pytest.approx(0.0, abs=1e-10)


def test_mix_readout_weights_are_a_softmax_over_slots() -> None:
    agg = make(readout="mix")
    ctx = torch.randn(2, 3, 32)
    # With one slot repeated 3 times the mixture equals that slot alone.
    one = ctx[:, :1]
    torch.testing.assert_close(
        agg._read(agg._queries(one, None), one),
        agg._read(agg._queries(one, None), one.expand(-1, 3, -1)),
        atol=1e-6,
        rtol=1e-5,
    )
