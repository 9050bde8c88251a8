"""World-model evaluation of trained latent action models (FLAM sec. 5.6, Tables 1 and 2).

Protocol, per test window of ``steps + 1`` frames (codes ``(b, steps + 1, n)``, pixels
``(b, steps + 1, h, w, c)``):

1. Latent actions ``(b, steps, k', d_a)`` are inferred from the whole ground-truth window (WM
   takes the true actions instead): this is what "latent actions inferred from ground-truth
   frames" means, and the only step that sees future frames.
2. The model rolls out ``steps`` frames autoregressively from the first frame alone
   (:func:`rollout_from_window` passes on nothing else), once with the inferred latent actions
   and once with latent actions drawn from its prior (:mod:`latentrl.prior`: uniform FSQ codes,
   N(0, 1) for the Gaussian model, and for the sparse model, which has no parametric prior,
   the empirical distribution of the latents it infers on other windows of the split).
3. Predicted codes are decoded to pixels by the tokenizer and compared with the real frames:
   PSNR at every step, SSIM, ``dPSNR_t`` (inferred minus prior), the fraction of exactly right
   codes, and the tokenizer's own reconstruction PSNR on the same frames (the ceiling).

Metric conventions are in :mod:`latentrl.metrics` (per-frame PSNR, then mean over windows).
Windows come from the tokenizer run's cached codes (the test split by default) and the pixels from the matching Minari dataset; a missing dataset is regenerated from the
tokenizer run's ``data.json`` (seeded, so the same episodes) and the cached codes are checked
against a fresh encoding of the frames. Everything is seeded: the windows, the prior's samples.

Run folders get ``eval/results.json``, ``eval/table.md``, a PSNR-per-step plot and rollout
GIF/PNG; several runs also give one comparison in the layout of the paper's Table 1.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from einops import pack, rearrange, unpack
from tqdm.auto import tqdm

from latentrl.artifacts import ModelRun, TokenizerRun, write_results
from latentrl.config import opt
from latentrl.data.cache import FrameCache
from latentrl.data.codes import CodeCache, encode_cache
from latentrl.data.minari_io import dataset_exists
from latentrl.data.recipes import ensure_datasets
from latentrl.distributed import resolve_device
from latentrl.metrics import MAX_PSNR, perceptual_metrics_status, pooled_psnr, psnr, ssim
from latentrl.models import LatentActionModel
from latentrl.prior import latent_pool, needs_pool, sample_prior
from latentrl.runs import env_tag, hardware, write_json, write_text
from latentrl.tokenizer import Tokenizer
from latentrl.types import CodeBatch, frames_to_float
from latentrl.viz import error_map, grid_frames, save_gif, save_mp4, save_png_strip

MODEL_ORDER = ("wm", "lam", "lapo", "oclam", "flam")
"""Column order of the paper's Table 1."""
MODEL_LABELS = {"wm": "WM", "lam": "LAM", "lapo": "LAPO-style", "oclam": "OC+LAM", "flam": "FLAM"}
MIN_CODE_AGREEMENT = 0.99
"""Below this fraction of cached codes matching a fresh encoding, the frames are not the ones
the tokenizer run encoded (another dataset under the same id): the evaluation refuses."""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how."""

    windows: int = opt(256, "test windows (fewer if the split has fewer)")
    steps: int = opt(10, "rollout steps after the one context frame (windows of steps + 1 frames)")
    seed: int = opt(0, "seed of the window choice and of the prior's latent actions")
    batch_size: int = opt(64, "windows per batch")
    split: str = opt("test", "split to evaluate on: test (the protocol) or val")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")


# -- loading ------------------------------------------------------------------------------------
def load_split(
    run: TokenizerRun, tokenizer: Tokenizer, split: str, root: Path | None, device: torch.device
) -> tuple[CodeCache, FrameCache]:
    """Codes and real frames of one split of a tokenizer run's data (``tokenizer``: its
    tokenizer, loaded).

    A missing dataset is regenerated (seeded, identical episodes); missing cached codes are
    encoded from the frames. Cached codes must agree with a fresh encoding (see
    :data:`MIN_CODE_AGREEMENT`), which catches a different dataset under the same id.
    """
    data = run.data()
    ids = data.dataset_ids()
    if split not in ids:
        raise ValueError(
            f"the data of {run.path} has no {split} split (its train_*.py --data-splits "
            f"give it no episodes): evaluate on another split (evaluate_world_model.py --split "
            f"{next(iter(reversed(ids)))}) or regenerate the data"
        )
    if not dataset_exists(ids[split], root):
        print(
            f"note: dataset {ids[split]} not found under {root or 'the default Minari root'}: "
            "regenerating the tokenizer run's datasets from its data.json (seeded: same episodes)"
        )
        ensure_datasets(data, root)
    frames = FrameCache.load(ids[split], root, labels=False)
    path = run.codes_path(split)
    if path.is_file():
        codes = run.codes(split)
    else:
        print(f"note: no cached codes at {path}: encoding the {split} frames now")
        codes = encode_cache(tokenizer, frames, device, progress=False)
    if codes.num_frames != frames.num_frames or not np.array_equal(
        codes.episode_starts, frames.episode_starts
    ):
        raise ValueError(
            f"{path} has {codes.num_frames} frames but dataset {ids[split]} has "
            f"{frames.num_frames}: the dataset was regenerated with other settings; re-run "
            "experiments/train_tokenizer.py or restore the dataset"
        )
    return codes, frames


def pick_windows(codes: CodeCache, window: int, count: int, seed: int) -> np.ndarray:
    """Sorted start frames ``(w,)`` of ``min(count, available)`` seeded, distinct windows."""
    longest = int(np.diff(codes.episode_starts).max())
    if longest < window:
        raise ValueError(
            f"no episode of the split has {window} frames (longest: {longest}): evaluate fewer "
            f"rollout steps (evaluate_world_model.py --steps {longest - 1}) or generate longer "
            "episodes"
        )
    starts = codes.starts(window)
    pick = np.random.default_rng(seed).choice(
        len(starts), size=min(count, len(starts)), replace=False
    )
    return np.sort(starts[pick])


# -- rollouts -----------------------------------------------------------------------------------
def infer_actions(model: LatentActionModel, batch: CodeBatch) -> torch.Tensor:
    """Latent actions ``(b, t - 1, k', d_a)`` from the whole window ``(b, t, n)``.

    WM is conditioned on true actions, so it gets ``batch.actions`` (``(b, t - 1, a)``); the
    latent action models get none.
    """
    if model.config.conditioned_on_true_actions:
        if batch.actions is None:
            raise ValueError("WM needs the true actions of the windows: the codes have none")
        return model.infer_latent_actions(batch.codes, batch.actions).actions
    return model.infer_latent_actions(batch.codes).actions


def rollout_from_window(
    model: LatentActionModel, window: torch.Tensor, latent_actions: torch.Tensor, steps: int
) -> torch.Tensor:
    """Codes ``(b, steps, n)`` predicted from the first frame of ``window`` ``(b, t, n)`` alone.

    The rest of the window is deliberately not passed on: once the latent actions are inferred,
    the rollout must not see the frames it predicts.
    """
    return model.rollout(window[:, :1], latent_actions, steps)


def decode_video(tok: Tokenizer, codes: torch.Tensor) -> torch.Tensor:
    """Codes ``(b, t, n)`` -> frames ``(b, t, c, h, w)`` in [0, 1]."""
    flat, ps = pack([codes], "* n")
    (video,) = unpack(tok.decode_indices(flat), ps, "* c h w")
    return video


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """Frames ``(t, c, h, w)`` in [0, 1] -> uint8 ``(t, h, w, c)``."""
    return rearrange(video.mul(255).round().byte().cpu(), "t c h w -> t h w c").numpy()


@torch.no_grad()
def quick_scores(
    model: LatentActionModel, tok: Tokenizer, batch: CodeBatch, generator: torch.Generator
) -> dict[str, float]:
    """Cheap figures for training logs: ``psnr_1step`` and ``dpsnr`` (mean over the window).

    Stage 2 never loads pixels, so the reference is the tokenizer's decoding of the true codes
    ``(b, t, n)``, and PSNR pools the MSE over all frames: per frame, an exactly right prediction
    would hit the 100 dB cap and swamp the mean. :func:`evaluate_run` gives the real figures.
    """
    steps = batch.codes.shape[1] - 1
    latent = infer_actions(model, batch)
    # A sparse model's prior is empirical: its own inferred latents of these (validation)
    # windows, pooled and drawn i.i.d. per slot and step (latentrl.prior).
    pool = rearrange(latent, "b s k d -> (b s k) d") if needs_pool(model) else None
    prior = sample_prior(model, batch.codes.shape[0], steps, generator, pool)
    truth = decode_video(tok, batch.codes[:, 1:])
    pred = decode_video(tok, rollout_from_window(model, batch.codes, latent, steps))
    sampled = decode_video(tok, rollout_from_window(model, batch.codes, prior, steps))
    return {
        "psnr_1step": pooled_psnr(pred[:, :1], truth[:, :1]),
        "dpsnr": pooled_psnr(pred, truth) - pooled_psnr(sampled, truth),
    }


# -- evaluation ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WorldModelScores:
    """The figures of one run; curves are per rollout step 1..steps (mean over windows)."""

    run: str
    model: str
    data: str
    split: str
    windows: int
    steps: int
    seed: int
    psnr_curve: tuple[float, ...]
    prior_psnr_curve: tuple[float, ...]
    dpsnr_curve: tuple[float, ...]
    ssim_curve: tuple[float, ...]
    code_accuracy_curve: tuple[float, ...]
    tokenizer_psnr: float
    code_agreement: float
    wall_seconds: float

    @property
    def psnr_1step(self) -> float:
        return self.psnr_curve[0]

    @property
    def psnr_last(self) -> float:
        return self.psnr_curve[-1]

    @property
    def dpsnr_1step(self) -> float:
        return self.dpsnr_curve[0]

    @property
    def dpsnr_mean(self) -> float:
        return float(np.mean(self.dpsnr_curve))

    @property
    def ssim_1step(self) -> float:
        return self.ssim_curve[0]

    def summary(self) -> dict[str, float]:
        """The headline figures (Table 1 rows)."""
        return {
            "psnr_1step": self.psnr_1step,
            "dpsnr_mean": self.dpsnr_mean,
            "dpsnr_1step": self.dpsnr_1step,
            "ssim_1step": self.ssim_1step,
            f"psnr_step{self.steps}": self.psnr_last,
            "tokenizer_psnr": self.tokenizer_psnr,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "summary": self.summary(),
            "perceptual": perceptual_metrics_status(),
            "hardware": hardware(),
            "conventions": "PSNR 10 log10(1/MSE) on [0, 1] pixels against the real frames, per "
            "frame then mean over windows (latentrl.metrics); dPSNR = PSNR(inferred latent "
            "actions) - PSNR(latent actions from the prior); rollout from the first frame only",
        }


class WindowScores(NamedTuple):
    """Per-frame figures ``(b, steps)`` of a batch of windows, and the decoded rollouts
    ``(b, steps, c, h, w)`` (inferred latent actions, prior latent actions)."""

    psnr: torch.Tensor
    prior_psnr: torch.Tensor
    ssim: torch.Tensor
    codes_right: torch.Tensor
    tokenizer_psnr: torch.Tensor
    predicted: torch.Tensor
    sampled: torch.Tensor


def score_windows(
    model: LatentActionModel,
    tok: Tokenizer,
    batch: CodeBatch,
    truth: torch.Tensor,
    prior_actions: torch.Tensor,
    steps: int,
) -> WindowScores:
    """Roll out ``steps`` frames from each window's first frame with inferred and with prior
    latent actions and score them against the real frames.

    ``batch.codes`` ``(b, steps + 1, n)``; ``truth`` the real frames ``(b, steps + 1, c, h, w)``
    in [0, 1]; ``prior_actions`` ``(b, steps, k', d_a)`` from ``model.sample_latent_actions``.
    """
    latent = infer_actions(model, batch)
    pred_codes = rollout_from_window(model, batch.codes, latent, steps)
    prior_codes = rollout_from_window(model, batch.codes, prior_actions, steps)
    target = truth[:, 1 : steps + 1]
    pred, sampled = decode_video(tok, pred_codes), decode_video(tok, prior_codes)
    return WindowScores(
        psnr=psnr(pred, target),
        prior_psnr=psnr(sampled, target),
        ssim=ssim(pred, target),
        codes_right=(pred_codes == batch.codes[:, 1 : steps + 1]).float().mean(dim=-1),
        tokenizer_psnr=psnr(decode_video(tok, batch.codes[:, 1 : steps + 1]), target),
        predicted=pred,
        sampled=sampled,
    )


class Example(NamedTuple):
    """The first evaluated window, uint8 ``(t, h, w, c)``: truth has ``steps + 1`` frames,
    the rollouts ``steps`` (the context frame is not predicted)."""

    truth: np.ndarray
    predicted: np.ndarray
    sampled: np.ndarray

    def rows(self) -> list[np.ndarray]:
        """Ground truth, prediction (after the context frame), error map: equal lengths."""
        predicted = np.concatenate([self.truth[:1], self.predicted])
        return [self.truth, predicted, error_map(self.truth, predicted)]


class Evaluation(NamedTuple):
    scores: WorldModelScores
    example: Example


@torch.no_grad()
def evaluate_run(
    run_dir: Path, config: EvalConfig, root: Path | None = None, progress: bool = True
) -> Evaluation:
    """Evaluate one model run folder (see the module docstring for the protocol); raises as
    :meth:`latentrl.artifacts.ModelRun.open` for a folder that is not a finished model run."""
    start = time.perf_counter()
    device = resolve_device(config.device)
    run = ModelRun.open(run_dir)
    tokenizer_run = run.tokenizer_run
    model = run.load_model(device).eval()
    tok = tokenizer_run.load_tokenizer(device).eval()
    data = tokenizer_run.data()
    kind = model.config.model
    codes, frames = load_split(tokenizer_run, tok, config.split, root, device)
    window = config.steps + 1
    starts = pick_windows(codes, window, config.windows, config.seed)
    # Drawn once for all windows, so the numbers do not depend on the batch size.
    pool = None
    if needs_pool(model):
        # The sparse model's empirical prior: latents it infers on other windows of the split.
        others = pick_windows(codes, window, config.windows, config.seed + 1)
        pool = latent_pool(model, codes.windows(others, window, labels=False).codes.to(device))
    prior_all = sample_prior(
        model, len(starts), config.steps, torch.Generator().manual_seed(config.seed), pool
    )
    parts: list[WindowScores] = []
    agree: list[torch.Tensor] = []
    example = None
    batches = range(0, len(starts), config.batch_size)
    for s in tqdm(batches, desc=f"eval {run_dir.name}", disable=not progress, dynamic_ncols=True):
        idx = starts[s : s + config.batch_size]
        batch = codes.windows(idx, window, labels=model.config.conditioned_on_true_actions).to(
            device
        )
        pixels = frames.frames[idx[:, None] + np.arange(window)]
        truth = frames_to_float(torch.from_numpy(pixels).to(device))
        fresh = tok.encode(rearrange(truth, "b t c h w -> (b t) c h w"))[1]
        agree.append((fresh == rearrange(batch.codes, "b t n -> (b t) n")).float().mean().cpu())
        scored = score_windows(model, tok, batch, truth, prior_all[s : s + len(idx)], config.steps)
        if example is None:
            example = Example(pixels[0], to_uint8(scored.predicted[0]), to_uint8(scored.sampled[0]))
        # Keep the per-frame figures only (the decoded videos would hold every frame).
        parts.append(scored._replace(predicted=scored.predicted[:0], sampled=scored.sampled[:0]))
    assert example is not None  # pick_windows returns at least one window or raises
    agreement = float(torch.stack(agree).mean())
    if agreement < MIN_CODE_AGREEMENT:
        raise ValueError(
            f"only {agreement:.1%} of the cached codes of {tokenizer_run.path} match a fresh "
            f"encoding of the {config.split} frames: the dataset under this id is not the one "
            "the tokenizer encoded (regenerated with other settings?); re-run the tokenizer stage"
        )

    def curve(field: str) -> tuple[float, ...]:
        per_frame = torch.cat([getattr(p, field).cpu() for p in parts])  # (windows, steps)
        return tuple(float(v) for v in per_frame.mean(dim=0))

    psnr_steps, prior_steps = curve("psnr"), curve("prior_psnr")
    scores = WorldModelScores(
        run=str(run_dir),
        model=kind,
        data=env_tag(data),
        split=config.split,
        windows=len(starts),
        steps=config.steps,
        seed=config.seed,
        psnr_curve=psnr_steps,
        prior_psnr_curve=prior_steps,
        dpsnr_curve=tuple(a - b for a, b in zip(psnr_steps, prior_steps, strict=True)),
        ssim_curve=curve("ssim"),
        code_accuracy_curve=curve("codes_right"),
        tokenizer_psnr=float(np.mean(curve("tokenizer_psnr"))),
        code_agreement=agreement,
        wall_seconds=time.perf_counter() - start,
    )
    return Evaluation(scores, example)


# -- reports --------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def run_table(scores: WorldModelScores) -> str:
    """Markdown: headline figures and the per-step curves of one run."""
    lines = [
        f"World-model evaluation of `{scores.run}` ({MODEL_LABELS[scores.model]}, {scores.data}, "
        f"{scores.windows} {scores.split} windows, seed {scores.seed})",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| PSNR, 1 step (dB) | {_fmt(scores.psnr_1step)} |",
        f"| dPSNR, mean of steps 1-{scores.steps} (dB) | {_fmt(scores.dpsnr_mean)} |",
        f"| dPSNR, 1 step (dB) | {_fmt(scores.dpsnr_1step)} |",
        f"| SSIM, 1 step | {_fmt(scores.ssim_1step, 4)} |",
        f"| PSNR, step {scores.steps} (dB) | {_fmt(scores.psnr_last)} |",
        f"| tokenizer reconstruction PSNR, ceiling (dB) | {_fmt(scores.tokenizer_psnr)} |",
        f"| cached codes matching a fresh encoding | {scores.code_agreement:.4f} |",
        "",
        "| step | PSNR | PSNR (prior) | dPSNR | SSIM | codes right |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(scores.steps):
        lines.append(
            f"| {i + 1} | {_fmt(scores.psnr_curve[i])} | {_fmt(scores.prior_psnr_curve[i])} | "
            f"{_fmt(scores.dpsnr_curve[i])} | {_fmt(scores.ssim_curve[i], 4)} | "
            f"{scores.code_accuracy_curve[i]:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _columns(
    scores: Sequence[WorldModelScores], all_models: bool
) -> list[tuple[str, WorldModelScores | None]]:
    """(label, scores) in Table 1's model order; a second run of a kind gets "(2)" etc.;
    with ``all_models`` every kind has a column (``None`` where no run was given)."""
    columns: list[tuple[str, WorldModelScores | None]] = []
    for kind in MODEL_ORDER:
        runs = [s for s in scores if s.model == kind]
        label = MODEL_LABELS[kind]
        columns += [(label if i == 0 else f"{label} ({i + 1})", s) for i, s in enumerate(runs)]
        if all_models and not runs:
            columns.append((label, None))
    return columns


def comparison_table(scores: Sequence[WorldModelScores]) -> str:
    """Markdown in the layout of the paper's Table 1: one column per model (WM, LAM, OC+LAM,
    FLAM; '-' where no run was given), one row per figure."""
    columns = _columns(scores, all_models=True)
    first = scores[0]
    steps = first.steps
    rows = [
        ("PSNR, 1 step (dB, ↑)", lambda s: _fmt(s.psnr_1step)),
        (f"ΔPSNR, mean of steps 1-{steps} (dB, ↑)", lambda s: _fmt(s.dpsnr_mean)),
        ("ΔPSNR, 1 step (dB, ↑)", lambda s: _fmt(s.dpsnr_1step)),
        ("SSIM, 1 step (↑)", lambda s: _fmt(s.ssim_1step, 4)),
        (f"PSNR, step {steps} (dB, ↑)", lambda s: _fmt(s.psnr_last)),
        ("tokenizer ceiling PSNR (dB)", lambda s: _fmt(s.tokenizer_psnr)),
    ]
    datasets = sorted({s.data for s in scores})
    lines = [
        f"| {', '.join(datasets)} | " + " | ".join(label for label, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, cell in rows:
        lines.append(
            f"| {name} | " + " | ".join("-" if s is None else cell(s) for _, s in columns) + " |"
        )
    notes = [
        "",
        f"{first.windows} {first.split} windows of {steps + 1} frames, seed {first.seed}; PSNR "
        f"per frame against the real frames (capped at {MAX_PSNR:.0f} dB), then mean over "
        "windows; rollouts from the first frame only.",
    ]
    if any(s.model == "wm" for s in scores):
        notes.append(
            "WM's ΔPSNR compares true actions with uniformly random true actions "
            "(the paper leaves this cell empty)."
        )
    if len(datasets) > 1 or len({(s.windows, s.steps, s.seed, s.split) for s in scores}) > 1:
        notes.append("Warning: the columns were evaluated on different data or settings.")
    notes += [f"- {label}: `{s.run}`" for label, s in columns if s is not None]
    return "\n".join(lines + notes) + "\n"


def plot_psnr_curves(scores: Sequence[WorldModelScores], path: Path) -> None:
    """PSNR per rollout step: solid with inferred latent actions, dashed with prior samples,
    dotted the tokenizer ceiling; one colour per run."""
    from matplotlib.figure import Figure  # here: importing the library loads no plotting

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, (label, s) in enumerate(_columns(scores, all_models=False)):
        assert s is not None
        color = f"C{i}"
        steps = np.arange(1, s.steps + 1)
        ax.plot(steps, s.psnr_curve, marker="o", color=color, label=f"{label}")
        ax.plot(steps, s.prior_psnr_curve, ls="--", color=color, label=f"{label}, prior actions")
        ax.axhline(s.tokenizer_psnr, ls=":", color=color, lw=1)
    ax.set(
        xlabel="rollout step",
        ylabel="PSNR (dB)",
        title="PSNR per step (dotted: tokenizer ceiling)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def write_run_outputs(run_dir: Path, evaluation: Evaluation) -> Path:
    """``eval/`` in the run folder: results, table.md, psnr_per_step.png, rollout GIF/MP4/PNG."""
    out = ModelRun(run_dir).eval_dir
    scores = evaluation.scores
    write_results(out, scores.as_json())
    write_text(out / "table.md", run_table(scores))
    plot_psnr_curves([scores], out / "psnr_per_step.png")
    video = grid_frames(evaluation.example.rows())
    save_gif(video, out / "rollout.gif")
    save_mp4(video, out / "rollout.mp4")
    save_png_strip(video, out / "rollout.png")
    return out


def write_comparison(evaluations: Sequence[Evaluation], out: Path) -> str:
    """comparison.md / .json, combined PSNR plot and rollout grid (ground truth, one prediction
    row per model, then one error row per model) in ``out``; returns the table."""
    scores = [e.scores for e in evaluations]
    table = comparison_table(scores)
    write_text(out / "comparison.md", table)
    write_json(out / "comparison.json", [s.as_json() for s in scores])
    plot_psnr_curves(scores, out / "psnr_per_step.png")
    truth = evaluations[0].example.truth
    if all(np.array_equal(e.example.truth, truth) for e in evaluations):
        ordered = sorted(evaluations, key=lambda e: MODEL_ORDER.index(e.scores.model))
        preds = [e.example.rows()[1] for e in ordered]
        video = grid_frames([truth, *preds, *(error_map(truth, p) for p in preds)])
        save_gif(video, out / "rollouts.gif")
        save_mp4(video, out / "rollouts.mp4")
        save_png_strip(video, out / "rollouts.png")
    else:
        print("note: the runs were evaluated on different windows: no combined rollout grid")
    return table
