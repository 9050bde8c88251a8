"""The two training stages as library calls, shared by the entry scripts and the pipelines.

- :func:`train_tokenizer_stage`: datasets (generated if missing) -> a
  :class:`~latentrl.artifacts.TokenizerRun` with weights, validation PSNR, and every split
  encoded to code indices.
- :func:`train_model_stage`: :class:`~latentrl.artifacts.TokenizerRun` -> a
  :class:`~latentrl.artifacts.ModelRun` with weights, tensorboard (losses, probe, rollout GIFs)
  and results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from latentrl.artifacts import ModelRun, TokenizerRun
from latentrl.checkpoint import read_state
from latentrl.config import from_dict
from latentrl.data.cache import FrameCache
from latentrl.data.codes import CodeCache, encode_cache
from latentrl.data.device_codes import DeviceCodes
from latentrl.data.recipes import DatasetSpec, ensure_datasets
from latentrl.distributed import DistInfo, barrier, from_main, main_first, setup
from latentrl.evaluation import quick_scores
from latentrl.models import LatentActionModel, ModelConfig, build_model
from latentrl.presets import StageConfig
from latentrl.probe import probe
from latentrl.runs import hardware, new_run_dir
from latentrl.tokenizer import Tokenizer, TokenizerConfig
from latentrl.train import TrainConfig, TrainResult, train
from latentrl.types import CodeBatch, frames_to_float
from latentrl.views import log_training_views
from latentrl.viz import error_map, grid_frames, log_gif, save_gif, save_mp4

PROCGEN_ACTIONS = 15
MULTIGRID_ACTIONS = 5
WM_EVAL_WINDOWS = 16
"""Held-out windows of the cheap world-model figures logged during training (eval/psnr_1step,
eval/dpsnr against the tokenizer's reconstruction; experiments/evaluate_world_model.py gives
the real ones)."""


def _resumed_progress(resume: Path | None) -> dict[str, Any]:
    """Curve (evaluations up to the checkpoint's step) and wall time a resumed run had."""
    if resume is None:
        return {"curve": [], "wall_seconds": 0.0}
    state = read_state(resume / "checkpoints" / "latest")
    curve = [
        row
        for row in state.get("curve", [])
        if isinstance(row, dict)
        and isinstance(row.get("step"), int)
        and row["step"] <= state["step"]
    ]
    wall = state.get("wall_seconds", 0.0)
    return {"curve": curve, "wall_seconds": float(wall) if isinstance(wall, int | float) else 0.0}


@contextlib.contextmanager
def _removed_unless_resumable(run: Path, info: DistInfo, resumed: bool) -> Iterator[None]:
    """A new run folder that fails before its first checkpoint is removed (nothing in it could
    be resumed): a failed command leaves no half-made run folder."""
    try:
        yield
    except BaseException:
        if info.is_main and not resumed and not (run / "checkpoints" / "latest").is_dir():
            shutil.rmtree(run, ignore_errors=True)
        raise


def _run_folder(
    resume: Path | None, runs: Path, data: DatasetSpec, model: str, seed: int, info: DistInfo
) -> Path:
    """The resumed folder, or a new one that rank 0 alone creates and every rank then uses."""
    if resume is not None:
        return resume
    path = from_main(new_run_dir(runs, data, model, seed) if info.is_main else None, info)
    assert path is not None
    return path


# -- tokenizer ---------------------------------------------------------------------------------
def _psnr(tok: Tokenizer, frames: np.ndarray, device: torch.device, batch: int = 256) -> float:
    mse, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(frames), batch):
            x = frames_to_float(torch.from_numpy(frames[s : s + batch])[None].to(device))[0]
            recon = tok(x)[0].clamp(0, 1)
            mse += torch.nn.functional.mse_loss(recon, x, reduction="sum").item()
            n += x.numel()
    return -10.0 * math.log10(max(mse / n, 1e-10))


def reconstruction_video(
    tok: Tokenizer, cache: FrameCache, device: torch.device, frames: int = 16
) -> np.ndarray:
    """First episode's frames | reconstructions | error, as one video ``(t, H, W, c)``."""
    truth = cache.frames[: min(frames, int(cache.episode_lengths[0]))]
    with torch.no_grad():
        x = frames_to_float(torch.from_numpy(truth)[None].to(device))[0]
        recon = tok(x)[0].clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return grid_frames([truth, recon, error_map(truth, recon)])


def train_tokenizer_stage(
    data: DatasetSpec,
    tok_cfg: TokenizerConfig,
    train_cfg: TrainConfig,
    *,
    root: Path | None,
    runs: Path,
    workers: int = 1,
    resume: Path | None = None,
) -> TokenizerRun:
    """Train the tokenizer on ``data``'s train split (or continue the run ``resume`` with its
    stored configs); returns the run."""
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    info = setup(train_cfg.device)
    if resume is not None:
        data, tok_cfg, train_cfg = TokenizerRun(resume).stored_configs()
    with main_first(info):  # rank 0 generates missing splits; the others then find them
        ids = ensure_datasets(data, root, workers=workers, progress=info.is_main)
    # Imported videos are action-free (their stored actions are placeholders): no labels.
    labels = data.env != "video"
    caches = {split: FrameCache.load(i, root, labels=labels) for split, i in ids.items()}
    _check_frame_shape(caches["train"], tok_cfg)
    run = _run_folder(resume, runs, data, "tokenizer", train_cfg.seed, info)
    artifact = TokenizerRun(run)
    if info.is_main:
        artifact.write_settings(data, tok_cfg, train_cfg)
    torch.manual_seed(train_cfg.seed)
    tok = Tokenizer(tok_cfg)
    frames = caches["train"].frames
    val = caches.get("val", caches["train"]).frames[:1024]

    def sample(step: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(frames), (train_cfg.batch_size,), generator=gen).numpy()
        # uint8 to the device (a quarter of the bytes), converted to float there.
        raw = torch.from_numpy(frames[idx]).to(info.device, non_blocking=True)
        return frames_to_float(raw[None])[0]

    def media(step: int, writer: SummaryWriter) -> None:
        video = reconstruction_video(tok, caches.get("val", caches["train"]), info.device)
        log_gif(writer, "eval/reconstruction", video, step)
        save_gif(video, run / "media" / f"reconstruction_{step:06d}.gif")

    start = time.perf_counter() - _resumed_progress(resume)["wall_seconds"]
    with _removed_unless_resumable(run, info, resume is not None):
        result = train(
            tok,
            sample,
            train_cfg,
            run,
            info,
            resume=resume is not None,
            media=media,
            evaluate=lambda step: {"val_psnr": _psnr(tok, val, info.device)},
            checkpoint_state=lambda: {"wall_seconds": time.perf_counter() - start},
        )
    if not info.is_main:
        barrier(info)  # until rank 0 has written the weights, codes and results
        return artifact
    _finish_tokenizer_run(artifact, tok, caches, info.device)
    artifact.write_results(
        {
            **_tokenizer_figures(artifact, tok, caches, info.device),
            "steps": train_cfg.steps,
            "steps_per_s": result.steps_per_s,
            "precision": result.precision,
            "wall_seconds": time.perf_counter() - start,
            "hardware": hardware(),
            "datasets": ids,
        },
    )
    barrier(info)
    return artifact


def _check_frame_shape(cache: FrameCache, tok_cfg: TokenizerConfig) -> None:
    """Refuse a dataset whose frames are not the size the tokenizer is built for."""
    h, w, c = cache.frame_shape
    if (h, w, c) != (tok_cfg.frame_size, tok_cfg.frame_size, tok_cfg.channels):
        raise ValueError(
            f"the dataset's frames are {h}x{w}x{c} but the tokenizer expects "
            f"{tok_cfg.frame_size}x{tok_cfg.frame_size}x{tok_cfg.channels}. Fix: train the "
            f"tokenizer at this size (experiments/train_tokenizer.py --frame-size {h} and the "
            "same dataset flags), then pass its run folder to train_lam.py --tokenizer"
        )


def _finish_tokenizer_run(
    artifact: TokenizerRun, tok: Tokenizer, caches: dict[str, FrameCache], device: torch.device
) -> None:
    """Save the trained tokenizer and every split encoded to code indices (stage 2's input)."""
    artifact.save_tokenizer(tok)
    for split, cache in caches.items():
        encode_cache(tok, cache, device).save(artifact.codes_path(split))


def _tokenizer_figures(
    artifact: TokenizerRun, tok: Tokenizer, caches: dict[str, FrameCache], device: torch.device
) -> dict[str, Any]:
    """Reconstruction PSNR per split (first 2048 frames) and how much of the codebook is used."""
    psnr = {split: _psnr(tok, cache.frames[:2048], device) for split, cache in caches.items()}
    codes = CodeCache.load(artifact.codes_path("train")).codes
    return {
        "psnr": psnr,
        "codebook_used": int(np.unique(codes).size),
        "codebook_size": tok.config.codebook_size,
    }


# -- latent action models ------------------------------------------------------------------------
def model_config_for(
    model_cfg: ModelConfig, tok: TokenizerConfig, data: DatasetSpec
) -> ModelConfig:
    """Fill in what the tokenizer and data fix: codebook, feature size, grid, agents."""
    return dataclasses.replace(
        model_cfg,
        codebook_size=tok.codebook_size,
        code_dim=tok.z_channels,
        grid=tok.grid,
        num_agents=data.agents if data.env == "multigrid" else 1,
        agent_actions=MULTIGRID_ACTIONS if data.env == "multigrid" else PROCGEN_ACTIONS,
    )


def code_features(tok: Tokenizer) -> torch.Tensor:
    """The frozen feature of every code ``(C, d_z)``."""
    with torch.no_grad():
        return tok.features_from_indices(
            torch.arange(tok.config.codebook_size, device=next(tok.parameters()).device)
        ).cpu()


def probe_batch(cache: CodeCache, window: int, count: int, seed: int) -> CodeBatch:
    """A fixed, labelled set of held-out windows for the probe."""
    starts = cache.starts(window)
    pick = np.random.default_rng(seed).choice(
        len(starts), size=min(count, len(starts)), replace=False
    )
    return cache.windows(np.sort(starts[pick]), window, labels=True)


def rollout_video(model: LatentActionModel, tok: Tokenizer, batch: CodeBatch) -> np.ndarray:
    """Ground truth | prediction | error for the first window of ``batch``: ``(t, H, W, c)``."""
    codes = batch.codes[:1].to(
        tok.fsq.implicit_codebook.device if hasattr(tok.fsq, "implicit_codebook") else "cpu"
    )
    latent = model.infer_latent_actions(codes, None if batch.actions is None else batch.actions[:1])
    pred = model.rollout(codes[:, :1], latent.actions)

    def to_video(c: torch.Tensor) -> np.ndarray:
        x = tok.decode_indices(c[0]).mul(255).round().byte()
        return x.permute(0, 2, 3, 1).cpu().numpy()

    truth = to_video(codes)
    predicted = np.concatenate([truth[:1], to_video(pred)])
    return grid_frames([truth, predicted, error_map(truth, predicted)])


def train_model_stage(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    stage_cfg: StageConfig,
    *,
    tokenizer_run: TokenizerRun | Path,
    runs: Path,
    resume: Path | None = None,
    stop_after: int | None = None,
) -> ModelRun:
    """Train a latent action model on a tokenizer run's encoded data (or continue the run
    ``resume`` with its stored configs); returns the run."""
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    info: DistInfo = setup(train_cfg.device)
    if resume is not None:
        model_cfg, train_cfg, stage_cfg, tokenizer_run = _stored_model_configs(ModelRun(resume))
    if not isinstance(tokenizer_run, TokenizerRun):
        tokenizer_run = TokenizerRun(tokenizer_run)
    data = _trainable_data(tokenizer_run, model_cfg)
    tok = tokenizer_run.load_tokenizer(info.device)
    model_cfg = model_config_for(model_cfg, tok.config, data)
    train_codes, val_codes = _train_and_val_codes(tokenizer_run, tok.config.codebook_size)
    run = _run_folder(resume, runs, data, model_cfg.model, train_cfg.seed, info)
    artifact = ModelRun(run)
    if info.is_main:
        artifact.write_settings(data, model_cfg, train_cfg, stage_cfg, tokenizer_run)

    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg, code_features(tok))
    labels = model_cfg.conditioned_on_true_actions
    held_out = probe_batch(val_codes, stage_cfg.window, stage_cfg.probe_windows, train_cfg.seed)

    # The codes live on the training device; a step moves only its window picks there.
    sample = DeviceCodes(train_codes, stage_cfg.window, info.device).sampler(
        train_cfg.batch_size, labels=labels
    )

    # A resumed run continues the curve and the wall time of the segments before it.
    prior = _resumed_progress(resume)
    curve: list[dict[str, float]] = prior["curve"]
    start = time.perf_counter() - prior["wall_seconds"]
    watch = _ModelWatch(model, tok, held_out, data, info.device, train_cfg.seed, run)

    def evaluate(step: int) -> dict[str, float]:
        out = watch.evaluate()
        curve.append({"step": step, "wall_s": time.perf_counter() - start, **out})
        return out

    with _removed_unless_resumable(run, info, resume is not None):
        result = train(
            model,
            sample,
            train_cfg,
            run,
            info,
            evaluate=evaluate,
            media=watch.media,
            resume=resume is not None,
            stop_after=stop_after,
            checkpoint_state=lambda: {"curve": curve, "wall_seconds": time.perf_counter() - start},
        )
    if not info.is_main:
        barrier(info)  # until rank 0 has written the model and results
        return artifact
    artifact.save_model(model)
    wall = time.perf_counter() - start
    artifact.write_results(_model_results(model_cfg, train_cfg, result, wall, curve, tokenizer_run))
    barrier(info)
    return artifact


def _model_results(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    result: TrainResult,
    wall_seconds: float,
    curve: list[dict[str, float]],
    tokenizer_run: TokenizerRun,
) -> dict[str, Any]:
    """A finished model run's ``results.json``: its last evaluation, the whole curve of every
    segment and the total wall time."""
    return {
        "model": model_cfg.model,
        "final_loss": float(np.mean(result.losses[-20:])) if result.losses else float("nan"),
        "steps": train_cfg.steps,
        "steps_per_s": result.steps_per_s,
        "precision": result.precision,
        "wall_seconds": wall_seconds,
        "hardware": hardware(),
        "eval": result.last_eval,
        "curve": curve,
        "tokenizer_run": str(tokenizer_run.path),
    }


def _trainable_data(tokenizer_run: TokenizerRun, model_cfg: ModelConfig) -> DatasetSpec:
    """The data of a finished tokenizer run, refused where ``model_cfg`` cannot train on it."""
    TokenizerRun.open(tokenizer_run.path)  # refused unless finished
    data = tokenizer_run.data()
    if data.env == "video" and model_cfg.conditioned_on_true_actions:
        raise ValueError(
            f"{tokenizer_run.path} was trained on imported videos, which have no actions: WM is "
            "conditioned on true actions; train flam, lam or oclam (train_lam.py --model)"
        )
    return data


def _train_and_val_codes(run: TokenizerRun, codebook: int) -> tuple[CodeCache, CodeCache]:
    """The encoded train split and the validation split (the train split where none exists)."""
    train_codes = run.codes("train", codebook)
    has_val = run.codes_path("val").is_file()
    return train_codes, (run.codes("val", codebook) if has_val else train_codes)


def _stored_model_configs(
    run: ModelRun,
) -> tuple[ModelConfig, TrainConfig, StageConfig, Path]:
    """The configs a model run was started with, for continuing it exactly."""
    path, stored = run.config_path, run.config()
    return (
        from_dict(ModelConfig, stored["model"], source=path),
        from_dict(TrainConfig, stored["train"], source=path),
        from_dict(StageConfig, stored["stage"], source=path),
        Path(str(stored["tokenizer_run"])),
    )


class _ModelWatch:
    """What a model run measures and records while it trains, on one fixed set of held-out
    windows: validation loss, the per-agent probe and slot binding (MultiGrid, action-free
    models), quick rollout scores, and the rollout and slot-attention media."""

    def __init__(
        self,
        model: LatentActionModel,
        tok: Tokenizer,
        held_out: CodeBatch,
        data: DatasetSpec,
        device: torch.device,
        seed: int,
        run: Path,
    ) -> None:
        self.model, self.tok, self.held_out, self.device = model, tok, held_out, device
        self.seed, self.run = seed, run
        self.labels = model.config.conditioned_on_true_actions
        self.probed = not self.labels and data.env == "multigrid"
        self.cell_px = data.tile_size if data.env == "multigrid" else 1
        self.token_px = tok.config.downsample

    def evaluate(self) -> dict[str, float]:
        batch = self.held_out.to(self.device)
        val_loss, _ = self.model.loss(batch if self.labels else batch.without_labels())
        out = {"val_loss": val_loss.item()}
        if self.probed:
            out.update(
                probe(self.model, batch, self.cell_px, self.token_px, seed=self.seed).as_dict()
            )
        # A few windows only: the rollouts must not slow CPU training down noticeably.
        few = CodeBatch(*(None if x is None else x[:WM_EVAL_WINDOWS] for x in batch))
        gen = torch.Generator().manual_seed(self.seed)
        out.update(
            quick_scores(self.model, self.tok, few if self.labels else few.without_labels(), gen)
        )
        return out

    def media(self, step: int, writer: SummaryWriter) -> None:
        first = CodeBatch(*(None if x is None else x[:1].to(self.device) for x in self.held_out))
        video = rollout_video(self.model, self.tok, first)
        log_gif(writer, "eval/rollout", video, step)
        save_gif(video, self.run / "media" / f"rollout_{step:06d}.gif")
        save_mp4(video, self.run / "media" / f"rollout_{step:06d}.mp4")
        if self.probed:
            # eval/attention (slot overlay GIF) and eval/correspondence (slots x agents, DCI).
            log_training_views(
                writer, step, self.model, self.tok, self.held_out.to(self.device),
                self.cell_px, self.token_px,
            )  # fmt: skip
