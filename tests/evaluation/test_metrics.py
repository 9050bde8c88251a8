"""PSNR, SSIM and the controllability gap against values computed by hand."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from latentrl.evaluation import infer_actions, score_windows
from latentrl.metrics import (
    MAX_PSNR,
    controllability_gap,
    find_pretrained_weights,
    perceptual_metrics_status,
    pooled_psnr,
    psnr,
    psnr_curve,
    ssim,
    ssim_curve,
)
from tests.evaluation.tiny import tiny_tokenizer
from tests.models.tiny import random_batch, tiny_model


def constant(value: float, *lead: int, size: int = 16) -> torch.Tensor:
    """Frames ``(*lead, 3, size, size)`` filled with ``value``."""
    return torch.full((*lead, 3, size, size), value)


def test_psnr_of_constant_frames_is_ten_log10_of_one_over_mse() -> None:
    # MSE 0.1^2 = 0.01 -> 20 dB; 0.01^2 = 1e-4 -> 40 dB.
    torch.testing.assert_close(psnr(constant(0.6, 2), constant(0.5, 2)), torch.tensor([20.0, 20.0]))
    torch.testing.assert_close(psnr(constant(0.51, 1), constant(0.5, 1)), torch.tensor([40.0]))


def test_psnr_is_per_frame_over_any_leading_axes() -> None:
    target = constant(0.5, 2, 3)
    pred = target.clone()
    pred[1, 2] += 0.1  # one frame off by 0.1 everywhere: 20 dB; the others identical
    out = psnr(pred, target)
    assert out.shape == (2, 3)
    assert out[1, 2].item() == pytest.approx(20.0, abs=1e-4)
    assert (out[0] == MAX_PSNR).all() and (out[1, :2] == MAX_PSNR).all()


def test_pooled_psnr_pools_the_mse_of_all_frames() -> None:
    target = constant(0.5, 2)
    pred = torch.stack([constant(0.6), constant(0.51)])  # MSE 1e-2 and 1e-4
    assert pooled_psnr(pred, target) == pytest.approx(-10 * math.log10((1e-2 + 1e-4) / 2), abs=1e-4)
    # Per frame then mean (the curves' convention) is 30 dB: never below the pooled figure.
    assert psnr(pred, target).mean().item() == pytest.approx(30.0, abs=1e-4)


def test_psnr_curve_is_the_batch_mean_at_each_step() -> None:
    target = constant(0.5, 2, 2)
    pred = target.clone()
    pred[0, 0] += 0.1  # 20 dB
    pred[1, 0] += 0.01  # 40 dB
    pred[:, 1] += 0.1  # 20 dB both
    torch.testing.assert_close(psnr_curve(pred, target), torch.tensor([30.0, 20.0]))


def test_ssim_of_identical_frames_is_one() -> None:
    frames = torch.rand(2, 3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ssim(frames, frames), torch.ones(2, 3))
    torch.testing.assert_close(ssim_curve(frames, frames), torch.ones(3))


@pytest.mark.parametrize(("a", "b"), [(0.5, 0.6), (0.2, 0.9)])
def test_ssim_of_constant_frames_is_the_luminance_term(a: float, b: float) -> None:
    # No variance or covariance: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2.
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(constant(b, 1), constant(a, 1)).item() == pytest.approx(expected, abs=1e-4)


def test_controllability_gap_by_hand_and_zero_for_equal_rollouts() -> None:
    target = constant(0.5, 2, 3)
    inferred = target + 0.01  # 40 dB everywhere
    sampled = target + 0.1  # 20 dB everywhere
    torch.testing.assert_close(
        controllability_gap(target, inferred, sampled), torch.full((3,), 20.0)
    )
    assert (controllability_gap(target, inferred, inferred.clone()) == 0).all()


def test_dpsnr_is_exactly_zero_when_the_prior_samples_are_the_inferred_actions() -> None:
    tok = tiny_tokenizer()
    frames = torch.rand(3, 5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    for kind in ("flam", "lam", "wm"):
        model = tiny_model(kind).eval()
        batch = random_batch(b=3, t=5)
        with torch.no_grad():
            latent = infer_actions(model, batch)
            scores = score_windows(model, tok, batch, frames, latent, steps=4)
        assert scores.psnr.shape == (3, 4)
        assert torch.equal(scores.psnr, scores.prior_psnr), kind
        gap = controllability_gap(frames[:, 1:], scores.predicted, scores.sampled)
        assert (gap == 0).all(), kind


def test_metrics_refuse_mismatched_or_integer_frames() -> None:
    with pytest.raises(ValueError, match="differ"):
        psnr(constant(0.5, 2), constant(0.5, 3))
    with pytest.raises(TypeError, match="float"):
        ssim(
            torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
            torch.zeros(1, 3, 16, 16, dtype=torch.uint8),
        )


def test_lpips_weights_are_looked_up_on_disk_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LATENTRL_LPIPS_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError, match=r"LPIPS weights not found at .*never downloaded"):
        find_pretrained_weights("lpips")
    missing = tmp_path / "alex.pth"
    monkeypatch.setenv("LATENTRL_LPIPS_WEIGHTS", str(missing))
    with pytest.raises(FileNotFoundError, match=re.escape(f"LPIPS weights not found at {missing}")):
        find_pretrained_weights("lpips")
    missing.write_bytes(b"weights")
    assert find_pretrained_weights("lpips") == missing
    assert find_pretrained_weights("fvd", missing) == missing
    assert perceptual_metrics_status()["fvd"].startswith("not computed")
