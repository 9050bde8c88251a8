"""Video-prediction metrics: PSNR, SSIM, per-step curves and the controllability gap (FLAM sec. 5.6).

Shapes: frames are float ``(..., c, h, w)`` in [0, 1] (any leading axes, e.g. ``b`` or ``b t``);
rollouts are ``(b, t, c, h, w)``. Per-frame functions return the leading axes ``(...)``;
curves return ``(t,)``.

Conventions, chosen once for the whole project:

- PSNR follows the paper: ``10 log10(1 / MSE)`` with pixel values in [0, 1] (torchmetrics'
  ``peak_signal_noise_ratio`` with ``data_range=1``). Identical frames would give +inf, so
  per-frame PSNR is capped at :data:`MAX_PSNR` (an MSE floor of 1e-10).
- A curve is the mean over the batch of per-frame PSNR at each step (per frame, then mean),
  the usual video-prediction convention: every window counts the same, whatever its error.
  :func:`pooled_psnr` (PSNR of the MSE pooled over all frames) is also provided; it is never
  larger than the per-frame mean (Jensen) and is dominated by the worst frames.
- The controllability gap is ``dPSNR_t = PSNR(x_t, x̂_t) - PSNR(x_t, x̂'_t)`` where ``x̂`` is
  generated from latent actions inferred from the ground truth and ``x̂'`` from latent actions
  drawn from the model's prior (Bruce et al., 2024; FLAM eq. 6).
- SSIM is torchmetrics' ``structural_similarity_index_measure`` (Gaussian window 11, sigma 1.5,
  k1 = 0.01, k2 = 0.03, ``data_range=1``), averaged over each frame.

LPIPS and FVD need pretrained networks (AlexNet/VGG, I3D) that are fetched from a hub at run time
elsewhere; this project never downloads weights, so :func:`find_pretrained_weights` only looks on
disk and otherwise raises a message saying where it looked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from einops import pack, unpack

MAX_PSNR = 100.0
"""Cap of per-frame PSNR in dB (MSE floor 1e-10): identical frames would otherwise give +inf."""

PerceptualMetric = Literal["lpips", "fvd"]
WEIGHTS_ENV = {"lpips": "LATENTRL_LPIPS_WEIGHTS", "fvd": "LATENTRL_FVD_WEIGHTS"}
"""Environment variable naming the weights file of each perceptual metric."""


def _check_frames(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.ndim < 3:
        raise ValueError(f"frames must be (..., c, h, w), got shape {tuple(pred.shape)}")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise TypeError("frames must be float in [0, 1]; convert uint8 with frames_to_float")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR in dB: frames ``(..., c, h, w)`` in [0, 1] -> ``(...)``, capped at 100."""
    _check_frames(pred, target)
    flat_pred, ps = pack([pred], "* c h w")
    flat_target, _ = pack([target], "* c h w")
    from torchmetrics.functional.image import peak_signal_noise_ratio  # scipy: 1 s to import

    values = peak_signal_noise_ratio(
        flat_pred.float(), flat_target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    (per_frame,) = unpack(values.clamp(max=MAX_PSNR), ps, "*")
    return per_frame


def pooled_psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of the MSE pooled over every pixel of every frame ``(..., c, h, w)`` (capped at 100)."""
    _check_frames(pred, target)
    from torchmetrics.functional.image import peak_signal_noise_ratio

    value = peak_signal_noise_ratio(pred.float(), target.float(), data_range=1.0)
    return float(value.clamp(max=MAX_PSNR))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM: frames ``(..., c, h, w)`` in [0, 1] (h, w >= 11) -> ``(...)``."""
    _check_frames(pred, target)
    flat_pred, ps = pack([pred], "* c h w")
    flat_target, _ = pack([target], "* c h w")
    from torchmetrics.functional.image import structural_similarity_index_measure

    values = structural_similarity_index_measure(
        flat_pred.float(), flat_target.float(), data_range=1.0, reduction="none"
    )
    assert isinstance(values, torch.Tensor)  # a tuple only with return_full_image
    (per_frame,) = unpack(values, ps, "*")
    return per_frame


def _per_step(values: torch.Tensor) -> torch.Tensor:
    """Per-frame values ``(b, t)`` -> mean over the batch at each step ``(t,)``."""
    if values.ndim != 2:
        raise ValueError(f"rollouts must be (b, t, c, h, w); got per-frame shape {values.shape}")
    return values.mean(dim=0)


def psnr_curve(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rollouts ``(b, t, c, h, w)`` -> mean over ``b`` of per-frame PSNR at each step ``(t,)``."""
    return _per_step(psnr(pred, target))


def ssim_curve(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rollouts ``(b, t, c, h, w)`` -> mean over ``b`` of per-frame SSIM at each step ``(t,)``."""
    return _per_step(ssim(pred, target))


def controllability_gap(
    target: torch.Tensor, inferred: torch.Tensor, sampled: torch.Tensor
) -> torch.Tensor:
    """``dPSNR_t (t,)``: PSNR curve of ``inferred`` minus that of ``sampled``.

    ``target`` ``(b, t, c, h, w)`` is the ground truth; ``inferred`` the rollout driven by latent
    actions inferred from it; ``sampled`` the rollout driven by latent actions from the prior.
    Exactly zero when both rollouts are equal.
    """
    return psnr_curve(inferred, target) - psnr_curve(sampled, target)


def find_pretrained_weights(
    metric: PerceptualMetric, path: str | os.PathLike[str] | None = None
) -> Path:
    """The weights file of a perceptual metric (LPIPS, FVD) on disk, or a clear error.

    Looks at ``path`` if given, else at ``$LATENTRL_LPIPS_WEIGHTS`` / ``$LATENTRL_FVD_WEIGHTS``.
    Nothing is ever downloaded.

    Raises:
        FileNotFoundError: naming where it looked and how to provide the file.
    """
    if metric not in WEIGHTS_ENV:
        raise ValueError(
            f"unknown perceptual metric {metric!r}; choose one of {sorted(WEIGHTS_ENV)}"
        )
    var = WEIGHTS_ENV[metric]
    where = path if path is not None else os.environ.get(var)
    if where is None:
        raise FileNotFoundError(
            f"{metric.upper()} weights not found at ${var} (unset); never downloaded at run time: "
            f"put the pretrained weights on disk and set {var}=/path/to/weights"
        )
    candidate = Path(where).expanduser()
    if not candidate.is_file():
        raise FileNotFoundError(
            f"{metric.upper()} weights not found at {candidate}; never downloaded at run time: "
            f"put the pretrained weights there or point {var} at them"
        )
    return candidate


def perceptual_metrics_status() -> dict[str, str]:
    """Why each perceptual metric is or is not reported (for results files)."""
    status = {}
    for metric in WEIGHTS_ENV:
        try:
            found = find_pretrained_weights(metric)  # type: ignore[arg-type]
        except FileNotFoundError as e:
            status[metric] = f"not computed: {e}"
        else:
            # Weights alone are not enough: the backbones (AlexNet/VGG, I3D) live in torchvision
            # and similar packages, which have no CPU build here (ENVIRONMENT.md).
            status[metric] = f"not computed: weights at {found}, but no backbone implementation"
    return status
