"""From video to policy, end to end: the pipeline behind ``experiments/bc_from_video.py``.

Stages (each reused when a finished result with the same settings exists):

1. World-model video: random play in the MultiGrid ``Goal`` task, mixed on ``small`` with
   whole episodes of the expert (``wm_expert_share``; actions recorded, used only for the small
   labelled subset and for evaluation); expert video: the scripted expert's episodes on other
   seeds, whose actions are hidden from every method but ``bc_true_actions``.
2. Tokenizer, then FLAM, LAM (and the LAPO-style model when its method is asked for) trained
   on the world-model video (two processes at once).
3. Per latent model: the decoder f and the controller g (real actions -> latent actions,
   :mod:`latentrl.controller`) on ``label_fraction`` of the world-model video's transitions, the
   expert video labelled with f's decoded actions, behaviour cloning on them; FLAM also plans
   (through g). ``action_kind`` picks the latent-action family of both models.
4. Every agent evaluated in the Gymnasium env on the same seeded episodes.

Every stage reads and writes :mod:`latentrl.artifacts`: the tokenizer and model runs are found
by their whole settings (reused only when nothing differs), the decoders, controllers and
policies go to one :class:`~latentrl.artifacts.PipelineRun` folder with the figures (shape in
:func:`run_pipeline`) and ``table.md``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from agents.base import expert_agent, random_agent
from agents.bc import BCConfig, bc_dataset_from_cache, train_bc
from agents.evaluate import evaluate
from agents.goal import GoalFrame
from agents.planner import LatentDecoder, LatentPlanner, PlannerConfig, usable_codes
from latentrl.artifacts import ModelRun, PipelineRun, TokenizerRun
from latentrl.config import opt
from latentrl.controller import ControllerConfig, LatentController, train_controller
from latentrl.data.cache import FrameCache
from latentrl.data.codes import CodeCache, encode_cache
from latentrl.data.recipes import DatasetSpec, ensure_datasets
from latentrl.decoder import ActionDecoder, DecoderConfig, label_cache, train_decoder
from latentrl.models import LatentActionModel
from latentrl.presets import Preset, get_preset
from latentrl.runs import hardware, sigterm_as_exit, stop_workers_on_error, write_text
from latentrl.stages import (
    model_config_for,
    probe_batch,
    train_model_stage,
    train_tokenizer_stage,
)
from latentrl.tokenizer import Tokenizer

EVAL_SEED = 1_000_000
"""Evaluation episodes use seeds from here: disjoint from every dataset's episode seeds."""
EXPERT_SEED = 500_000
"""First episode seed of the expert video (the world-model video starts at 0)."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """What ``bc_from_video.py`` runs (every field is a flag)."""

    preset: Literal["tiny", "small", "paper"] = opt(
        "tiny",
        "tiny: CPU minutes (8x8 room, 32 px; 16x16 above 4 agents); small: 16x16 room at 64 px, "
        "up to 16 agents; paper: GPU scale (32x32 room, 128 px)",
    )
    agents: int = opt(4, "agents in the Goal task")
    action_kind: Literal["fsq", "gaussian", "sparse"] = opt(
        "fsq",
        "latent-action family of FLAM and LAM: fsq codes, gaussian (beta-KL, prior N(0, 1)) or "
        "sparse (L1 + variance/covariance, empirical prior); the decoder, controller, labelling, "
        "cloning and planner follow it",
    )
    wm_episodes: int = opt(0, "episodes of the world model's video (0: the preset's)")
    wm_expert_share: float = opt(
        -1.0,
        "share of the world-model video's episodes played by the expert (action-free, on other "
        "seeds than the cloned video; 0: random play only; -1: the preset's, WM_EXPERT_SHARE: "
        "tiny 0, small and paper 0.5). Above 0 the world model sees agents waiting on their "
        "goals, as in the cloned video; the labelled subset is drawn from the same mixed video",
    )
    expert_episodes: int = opt(1000, "expert episodes in the video that is cloned")
    label_fraction: float = opt(
        0.02, "fraction of the world-model video's transitions with known actions"
    )
    label_count: int = opt(0, "absolute number of labelled transitions (overrides the fraction)")
    episodes: int = opt(100, "evaluation episodes per agent (fixed seeds, same for every agent)")
    planner_episodes: int = opt(
        0,
        "evaluation episodes of the planner, the first of the same seeds (0: as many as "
        "--episodes; it replans every step, so it costs more than the cloned policy)",
    )
    methods: tuple[str, ...] = opt(
        ("expert", "random", "bc_true_actions", "bc_flam", "bc_lam", "planner_flam"),
        "which agents to build and evaluate (also bc_lapo: the LAPO-style model, off by default "
        "until its latent carries the agents' moves, docs/research/strong_lam.md; "
        "bc_lam_small: LAM with one agent's codebook, FLAM's per-slot code; bc_lam_capacity: "
        "that codebook once per agent)",
    )
    model_steps: int = opt(0, "training steps of FLAM (0: the preset's; LAM gets its share)")
    tokenizer_steps: int = opt(0, "tokenizer training steps (0: the preset's)")
    bc_steps: int = opt(
        0,
        "behaviour-cloning steps (0: the preset's, BC_STEPS: tiny 2500, small and paper 8000; "
        "how success grows with steps: docs/research/bc_acting.md)",
    )
    bc_extractor: Literal["frame", "agents"] = opt(
        "frame",
        "features extractor of every cloned policy: frame (one CNN summary for all agents' "
        "heads) or agents (one learned query per agent over the cell features; "
        "bc_true_actions.py --extractor)",
    )
    decoder_steps: int = opt(0, "decoder training steps (0: the decoder config's default)")
    controller_steps: int = opt(0, "controller training steps (0: the controller config's default)")
    flam_run: str = opt("", "use this trained FLAM run folder instead of training/reusing one")
    lam_run: str = opt("", "use this trained LAM run folder instead of training/reusing one")
    lapo_run: str = opt(
        "", "use this trained LAPO-style run folder instead of training/reusing one"
    )
    flam_candidates: int = opt(
        1,
        "FLAM runs trained with seeds seed, seed+1, ...; with more than one, the one with the "
        "lowest validation prediction loss is kept (label-free model selection; an option, not "
        "needed for binding since slots are seeded)",
    )
    jobs: int = opt(2, "processes for the parallel stages (FLAM and LAM side by side)")
    seed: int = opt(0, "seed of the models, decoders, policies")
    cpu_bf16: bool = opt(
        False,
        "train the tokenizer and the world models with bf16 autocast on a CPU with native bf16 "
        "matmuls (training's --cpu-bf16); evaluation and acting stay fp32",
    )
    planner: PlannerConfig = dataclasses.field(default_factory=PlannerConfig)
    """The planner's search and score (the scripts' ``--planner-*`` flags)."""


PIPELINE_PRESETS = {"tiny": "tiny", "small": "small", "paper": "paper-multigrid"}
"""The training preset behind each ``--preset`` of the pipeline."""

BC_STEPS = {"tiny": 2500, "small": 8000, "paper": 8000}
"""Behaviour-cloning steps of each ``--preset`` (``--bc-steps 0``). On the 16x16 room of
``small`` the cloned policy needs more than the 8x8 room's 2500: with true actions, 4 agents,
1000 expert episodes it reached 0.13 after 2500 steps and 0.93 after 8000
(docs/research/bc_acting.md). ``paper`` (32x32 cells) takes small's figure; it is not measured."""


WM_EXPERT_SHARE = {"tiny": 0.0, "small": 0.5, "paper": 0.5}
"""Share of expert episodes in each ``--preset``'s world-model video (``--wm-expert-share -1``).
On the 16x16 room of ``small`` the expert's agents wait on their goals in 36-41% of its frames,
random play's in 0.07-1.1%: a world model of random play alone misreads the waits, and the
clone of its labels fails (4 agents: FLAM-BC 0.32 with random play, 0.87 with half expert
episodes, true-action BC 0.95; docs/research/small_preset.md). ``tiny`` keeps random play (its
main-job figures are measured on it); ``paper`` takes small's figure, unmeasured."""


def wm_expert_share(cfg: PipelineConfig) -> float:
    """The world-model video's share of expert episodes (``cfg``'s, else the preset's)."""
    if cfg.wm_expert_share == -1:
        return WM_EXPERT_SHARE[cfg.preset]
    if not 0.0 <= cfg.wm_expert_share <= 1.0:
        raise ValueError(
            f"--wm-expert-share must lie in [0, 1] (or -1: the preset's), got {cfg.wm_expert_share}"
        )
    return cfg.wm_expert_share


def pipeline_preset(cfg: PipelineConfig) -> Preset:
    """The training preset with the Goal task's data (random play, mixed with expert episodes
    where :func:`wm_expert_share` says so) and ``cfg``'s overrides."""
    base = get_preset(PIPELINE_PRESETS[cfg.preset])
    share = wm_expert_share(cfg)
    data = dataclasses.replace(
        base.data,
        task="goal",
        agents=cfg.agents,
        # MultiGrid registers at most 4 agents in an 8x8 room (36 free cells, 2 per agent).
        size=base.data.size if cfg.agents <= 4 else max(base.data.size, 16),
        episodes=cfg.wm_episodes or base.data.episodes,
        seed=0,
        **({"policy": "mixed", "expert_share": share} if share else {}),
    )
    model = dataclasses.replace(base.model, action_kind=cfg.action_kind)
    if 2 * cfg.agents + 4 > model.num_slots and cfg.preset in ("tiny", "small"):
        # Goal cells are objects too: leave slots for every agent, its goal and the background.
        model = dataclasses.replace(model, num_slots=2 * cfg.agents + 4)
    train = (
        base.train
        if not cfg.model_steps
        else dataclasses.replace(base.train, steps=cfg.model_steps)
    )
    tok_train = (
        base.tokenizer_train
        if not cfg.tokenizer_steps
        else dataclasses.replace(base.tokenizer_train, steps=cfg.tokenizer_steps)
    )
    steps_by_model = base.steps_by_model
    if cfg.model_steps and steps_by_model:
        ratio = {m: s / base.train.steps for m, s in steps_by_model}
        steps_by_model = tuple((m, max(1, round(r * cfg.model_steps))) for m, r in ratio.items())
    train = dataclasses.replace(train, seed=cfg.seed, threads=1, cpu_bf16=cfg.cpu_bf16)
    return dataclasses.replace(
        base,
        data=data,
        model=model,
        train=train,
        tokenizer_train=dataclasses.replace(tok_train, seed=cfg.seed, cpu_bf16=cfg.cpu_bf16),
        steps_by_model=steps_by_model,
    )


def expert_spec(cfg: PipelineConfig, data: DatasetSpec) -> DatasetSpec:
    """The expert video: same room and agents, scripted expert, all episodes in one split."""
    return dataclasses.replace(
        data,
        policy="expert",
        episodes=cfg.expert_episodes,
        steps=4 * data.size,
        splits=(1.0, 0.0, 0.0),
        seed=EXPERT_SEED,
    )


def decoder_config(cfg: PipelineConfig) -> DecoderConfig:
    """The decoder settings of both latent models (raises on a label fraction of 0)."""
    return DecoderConfig(
        label_fraction=cfg.label_fraction,
        label_count=cfg.label_count,
        seed=cfg.seed,
        **({"steps": cfg.decoder_steps} if cfg.decoder_steps else {}),
    )


def controller_config(cfg: PipelineConfig) -> ControllerConfig:
    """The controller settings of both latent models (trained on the decoder's labelled subset)."""
    return ControllerConfig(
        seed=cfg.seed, **({"steps": cfg.controller_steps} if cfg.controller_steps else {})
    )


def bc_config(cfg: PipelineConfig) -> BCConfig:
    """The behaviour-cloning settings every cloned policy shares (true or decoded labels)."""
    return BCConfig(
        seed=cfg.seed, steps=cfg.bc_steps or BC_STEPS[cfg.preset], extractor=cfg.bc_extractor
    )


def env_id(data: DatasetSpec) -> str:
    return f"MultiGrid-Goal-{data.size}x{data.size}-N{data.agents}-v0"


def env_kwargs(data: DatasetSpec) -> dict[str, Any]:
    return {"tile_size": data.tile_size}


# -- checks of given runs ------------------------------------------------------------------------
def validation_loss(run: ModelRun) -> float:
    """The run's last held-out prediction loss (no labels involved): the selection criterion
    among FLAM seeds (how it tracked the per-agent probe: docs/research/bc_acting.md)."""
    curve = run.results().get("curve") or []
    losses = [c["val_loss"] for c in curve if "val_loss" in c]
    return float(losses[-1]) if losses else float("inf")


def check_fits_task(run: ModelRun, data: DatasetSpec, action_kind: str | None = None) -> ModelRun:
    """``run`` if it was trained on frames of ``data``'s env (with ``action_kind`` latent
    actions, if given); whether it is a finished run is :meth:`ModelRun.open`'s question."""
    trained = run.tokenizer_run.data()
    want_px, got_px = data.size * data.tile_size, trained.size * trained.tile_size
    if trained.env != "multigrid" or got_px != want_px:
        raise ValueError(
            f"{run.path} was trained on {trained.env} frames of {got_px}x{got_px} px but the "
            f"task's frames are {want_px}x{want_px} px: train it on this env's video (same "
            "--agents and preset)"
        )
    if trained.agents != data.agents:
        raise ValueError(
            f"{run.path} was trained on video of {trained.agents} agents but the task has "
            f"{data.agents}: pass --agents {trained.agents} or train a model on this agent count"
        )
    if action_kind is not None:
        kind = run.model_config().get("action_kind", "fsq")
        if kind != action_kind:
            raise ValueError(
                f"{run.path} has {kind} latent actions but --action-kind is {action_kind}: pass "
                f"--action-kind {kind} (or a run trained with {action_kind} latent actions)"
            )
    return run


def check_planner_run(run: ModelRun, planner: PlannerConfig) -> None:
    """Refuse a FLAM run the planner cannot score with, before anything long starts."""
    positional = run.model_config().get("pos_slots", True)
    if planner.score == "slots" and not positional:
        raise ValueError(
            f"{run.path} has no positional slots, which the planner's slot score needs: pass "
            "--planner-score pixels, or drop planner_flam from --methods"
        )


def check_planner_search(planner: PlannerConfig, action_kind: str) -> None:
    """Refuse a planner search the latent-action family cannot run, before anything long starts
    (the planner is built last, after decoding and cloning)."""
    if action_kind != "fsq" and planner.search not in ("auto", "cem"):
        raise ValueError(
            f"--planner-search {planner.search} swaps FSQ codes, but --action-kind "
            f"{action_kind} gives continuous latent actions: use --planner-search cem or auto"
        )
    if planner.search == "cem" and planner.score != "slots":
        raise ValueError("--planner-search cem scores in slot space: use --planner-score slots")


# -- stage functions (top level: they run in worker processes) ----------------------------------
def _tokenizer(
    preset: Preset, *, runs: Path, root: str | None, workers: int
) -> tuple[TokenizerRun, bool]:
    """(the finished tokenizer run of the preset's exact settings, reused) or a new one."""
    settings = TokenizerRun.settings_for(preset.data, preset.tokenizer, preset.tokenizer_train)
    found = TokenizerRun.find(runs, settings)
    if found is not None:
        return found, True
    trained = train_tokenizer_stage(
        preset.data,
        preset.tokenizer,
        preset.tokenizer_train,
        root=root,
        runs=runs,
        workers=workers,
    )
    return trained, False


def _train_model(
    kind: str, preset: Preset, tokenizer_run: TokenizerRun, runs: Path, seed: int | None = None
) -> tuple[str, ModelRun, bool]:
    """(kind, the finished run of exactly these settings or a new one, whether reused)."""
    torch.set_num_threads(1)
    if seed is not None:
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, seed=seed))
    model_cfg = preset.model_for(kind.split("_")[0])
    if kind == "lam_small":
        # The ablation "LAM, one agent's codebook": the scene latent gets FLAM's per-slot code.
        model_cfg = dataclasses.replace(
            model_cfg,
            action_levels=preset.model.action_levels,
            action_positions=1,
            action_norm=preset.model.action_norm,
        )
    if kind == "lam_capacity":
        levels = tuple(preset.model.action_levels) * preset.data.agents
        dim = preset.model.action_dim * preset.data.agents  # the continuous families' capacity
        model_cfg = dataclasses.replace(
            model_cfg,
            action_levels=levels,
            action_positions=1,
            action_dim=dim,
            action_norm=preset.model.action_norm,
        )
    train_cfg = preset.train_for(model_cfg.model)
    tok = tokenizer_run.load_tokenizer()
    filled = model_config_for(model_cfg, tok.config, tokenizer_run.data())
    settings = ModelRun.settings_for(filled, train_cfg, preset.stage, tokenizer_run)
    reuse = ModelRun.find(runs, model_cfg.model, settings)
    if reuse is not None:
        return kind, reuse, True
    run = train_model_stage(
        model_cfg, train_cfg, preset.stage, tokenizer_run=tokenizer_run, runs=runs
    )
    return kind, run, False


@dataclasses.dataclass
class _Inputs:
    """What every part of a latent model's branch reads: the model, its tokenizer and codes."""

    model: LatentActionModel
    tok: Tokenizer
    data: DatasetSpec
    train_codes: CodeCache
    val_codes: CodeCache

    @classmethod
    def load(cls, model_run: ModelRun) -> _Inputs:
        torch.set_num_threads(1)
        tokenizer_run = model_run.tokenizer_run
        return cls(
            model=model_run.load_model(),
            tok=tokenizer_run.load_tokenizer(),
            data=tokenizer_run.data(),
            train_codes=tokenizer_run.codes("train"),
            val_codes=tokenizer_run.codes("val"),
        )


def _decoder_part(
    kind: str, model_run: ModelRun, cfg: PipelineConfig, out: PipelineRun
) -> dict[str, Any]:
    """The latent-action decoder f of one model, saved in ``out``; its held-out report."""
    lap = _Laps()
    inputs = _Inputs.load(model_run)
    lap("load")
    decoder, report = train_decoder(
        inputs.model, inputs.train_codes, decoder_config(cfg), eval_cache=inputs.val_codes
    )
    decoder.save(out.decoder_dir(kind))
    lap("decoder")
    return {"decoder": report.as_dict(), "_parts": lap.seconds}


def _controller_part(
    kind: str, model_run: ModelRun, cfg: PipelineConfig, out: PipelineRun
) -> dict[str, Any]:
    """The controller (real actions -> latent actions) on the decoder's labelled subset, saved
    in ``out``: the planner drives the world model through it."""
    lap = _Laps()
    inputs = _Inputs.load(model_run)
    decoder = ActionDecoder.load(out.decoder_dir(kind))
    lap("load_controller")
    controller, report = train_controller(
        inputs.model,
        decoder,
        inputs.train_codes,
        decoder_config(cfg),
        controller_config(cfg),
        eval_cache=inputs.val_codes,
        progress=False,
    )
    controller.save(out.controller_dir(kind))
    lap("controller")
    return {"controller": report.as_dict(), "_parts": lap.seconds}


def _clone_part(
    kind: str,
    model_run: ModelRun,
    expert_ids: dict[str, str],
    root: str | None,
    cfg: PipelineConfig,
    out: PipelineRun,
) -> dict[str, Any]:
    """Label the expert video with the decoder, clone a policy from it, evaluate the policy."""
    lap = _Laps()
    inputs = _Inputs.load(model_run)
    decoder = ActionDecoder.load(out.decoder_dir(kind))
    expert = FrameCache.load(expert_ids["train"], root)
    lap("load_clone")
    labels, label_acc, label_joint = _expert_labels(inputs.model, decoder, inputs.tok, expert)
    lap("labels")
    frames, actions = bc_dataset_from_cache(expert, labels)
    agent = train_bc(frames, actions, bc_config(cfg))
    agent.save(out.policy_dir(f"bc_{kind}"))
    lap("bc")
    data = inputs.data
    figures = evaluate(agent, env_id(data), cfg.episodes, EVAL_SEED, env_kwargs=env_kwargs(data))
    lap("evaluate_bc")
    return {
        "figures": figures,
        "expert_label_accuracy": label_acc,
        "expert_label_joint_accuracy": label_joint,
        "bc": agent.stats,
        "_parts": lap.seconds,
    }


def _planner_part(
    kind: str, model_run: ModelRun, cfg: PipelineConfig, out: PipelineRun
) -> dict[str, Any]:
    """The planner with the model, its decoder and its controller, on the seeded episodes."""
    lap = _Laps()
    inputs = _Inputs.load(model_run)
    decoder = ActionDecoder.load(out.decoder_dir(kind))
    controller = LatentController.load(out.controller_dir(kind))
    lap("load_planner")
    figures = evaluate_planner(
        inputs.model,
        inputs.tok,
        decoder,
        inputs.train_codes,
        inputs.data,
        cfg.planner,
        cfg.planner_episodes or cfg.episodes,
        seed=cfg.seed,
        controller=controller,
    )
    lap("planner")
    return {"figures": figures, "_parts": lap.seconds}


def _branch_results(kind: str, parts: dict[str, dict[str, Any]], model_run: str) -> dict[str, Any]:
    """The methods' entries of one latent model from its branch's parts."""
    report, control = parts["decoder"]["decoder"], parts["controller"]["controller"]
    results: dict[str, Any] = {}
    if "clone" in parts:
        clone = parts["clone"]
        results[f"bc_{kind}"] = {
            **clone["figures"],
            "decoder_accuracy": report["accuracy"],
            "decoder_joint_accuracy": report["joint_accuracy"],
            "decoder": report,
            "controller_accuracy": control["decoded_accuracy"],
            "controller": control,
            "expert_label_accuracy": clone["expert_label_accuracy"],
            "expert_label_joint_accuracy": clone["expert_label_joint_accuracy"],
            "bc": clone["bc"],
            "model_run": model_run,
        }
    if "planner" in parts:
        results[f"planner_{kind}"] = {
            **parts["planner"]["figures"],
            "decoder_accuracy": report["accuracy"],
            "controller_accuracy": control["decoded_accuracy"],
        }
    return results


def _expert_labels(
    model: LatentActionModel, decoder: LatentDecoder, tok: Tokenizer, expert: FrameCache
) -> tuple[np.ndarray, float, float]:
    """Decoded actions ``(F, N)`` of the expert video and their per-agent and joint accuracy
    against the true actions (kept for this score only, never for training)."""
    expert_codes = encode_cache(tok, expert, progress=False)
    labels = label_cache(model, decoder, expert_codes)
    truth = expert_codes.actions
    assert truth is not None
    has = truth[:, 0] >= 0
    right = labels[has] == truth[has]
    return labels, float(right.mean()), float(right.all(axis=1).mean())


class _Laps:
    """Seconds of each part of a branch: ``lap(name)`` closes the part that ends now."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self._last
        self._last = now


def evaluate_planner(
    model: LatentActionModel,
    tok: Tokenizer,
    decoder: LatentDecoder,
    train_codes: CodeCache,
    data: DatasetSpec,
    config: PlannerConfig,
    episodes: int,
    seed: int = 0,
    controller: LatentController | None = None,
) -> dict[str, Any]:
    """The planner with ``model``, ``decoder`` and ``controller`` in the Goal env of ``data``,
    on the same seeded episodes as every other agent; FSQ code searches try the codes the model
    uses on its own video."""
    usable = None
    if model.config.bottleneck.num_codes is not None:
        sample = probe_batch(train_codes, 4, 256, seed).codes
        usable = usable_codes(model, sample, config.min_code_share)
    planner = LatentPlanner(
        model,
        tok,
        decoder,
        config,
        cell_px=data.tile_size,
        usable_codes=usable,
        controller=controller,
    )

    def goal_env() -> gym.Env[Any, Any]:
        return GoalFrame(gym.make(env_id(data), **env_kwargs(data)))

    start = time.perf_counter()
    figures = evaluate(planner, goal_env, episodes, EVAL_SEED)
    seconds = time.perf_counter() - start
    return {
        **figures,
        "seconds": seconds,
        "seconds_per_step": seconds / max(figures["mean_length"] * episodes, 1.0),
        "planner": dataclasses.asdict(planner.config),
    }


def _reference_branch(
    expert_ids: dict[str, str],
    data: DatasetSpec,
    root: str | None,
    cfg: PipelineConfig,
    out: PipelineRun,
) -> dict[str, Any]:
    """Expert, random and true-action BC (the ceiling of every video method)."""
    torch.set_num_threads(1)
    lap = _Laps()
    results: dict[str, Any] = {}
    eid, kw = env_id(data), env_kwargs(data)
    probe = gym.make(eid, **kw)
    if "expert" in cfg.methods:
        results["expert"] = evaluate(
            expert_agent(probe.unwrapped), eid, cfg.episodes, EVAL_SEED, env_kwargs=kw
        )
        lap("evaluate_expert")
    if "random" in cfg.methods:
        results["random"] = evaluate(
            random_agent(probe), eid, cfg.episodes, EVAL_SEED, env_kwargs=kw
        )
        lap("evaluate_random")
    if "bc_true_actions" in cfg.methods:
        expert = FrameCache.load(expert_ids["train"], root)
        frames, actions = bc_dataset_from_cache(expert)
        agent = train_bc(frames, actions, bc_config(cfg))
        agent.save(out.policy_dir("bc_true_actions"))
        lap("bc")
        results["bc_true_actions"] = {
            **evaluate(agent, eid, cfg.episodes, EVAL_SEED, env_kwargs=kw),
            "bc": agent.stats,
        }
        lap("evaluate_bc")
    results["_parts"] = lap.seconds
    return results


# -- the whole pipeline ---------------------------------------------------------------------------
METHOD_ORDER = (
    "expert",
    "random",
    "bc_true_actions",
    "bc_flam",
    "bc_lam",
    "bc_lapo",
    "bc_lam_small",
    "bc_lam_capacity",
    "planner_flam",
)
MODEL_KINDS = ("flam", "lam", "lapo", "lam_small", "lam_capacity")
"""Latent models the pipeline can train: ``lam`` the strong monolithic LAM (the preset's
joint-action scene latent), ``lapo`` the LAPO-style model, ``lam_small`` LAM with FLAM's
per-action codebook (one slot's), ``lam_capacity`` that codebook once per agent, FSQ
``(3, 3) * N``: 9^N codes (equal total capacity for the task)."""


def run_pipeline(
    cfg: PipelineConfig, *, runs: Path, root: str | None = None, workers: int = 2
) -> dict[str, Any]:
    """:func:`_run_pipeline`, whose output folder is removed again if it fails or is stopped
    (SIGTERM): a failed command leaves no half-made folder (trained model runs stay, finished
    and reusable; an interrupted training run stays resumable)."""
    made: list[Path] = []
    try:
        with sigterm_as_exit():
            return _run_pipeline(cfg, runs=runs, root=root, workers=workers, made=made)
    except BaseException:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _run_pipeline(
    cfg: PipelineConfig, *, runs: Path, root: str | None, workers: int, made: list[Path]
) -> dict[str, Any]:
    """Run every stage and return (and write) the results.

    ``results.json`` holds ``env_id``, ``num_agents``, ``label_fraction``, ``episodes``,
    ``wall_seconds``, ``hardware`` and ``methods``: for each method ``success_rate`` (episodes in
    which every agent reached its goal), ``mean_return`` and, for the latent methods,
    ``decoder_accuracy`` (held-out random-play transitions) and ``expert_label_accuracy`` (the
    decoded labels of the expert video against its hidden true actions), and
    ``controller_accuracy`` (the decoder reads the controller's latent for real actions u as u,
    held-out random play) with the full :class:`latentrl.controller.ControllerReport` under
    ``controller``.
    """
    _check_request(cfg)
    start = time.perf_counter()
    preset = pipeline_preset(cfg)
    data = preset.data
    stage_seconds: dict[str, float] = {}
    kinds, same_lam = _model_kinds(cfg)
    checked = _given_runs(cfg, kinds, data)  # checked before anything long starts
    out = PipelineRun.create(runs, env_id(data), cfg.seed)
    made.append(out.path)
    t0 = time.perf_counter()
    tokenizer_run: TokenizerRun | None = None
    reused: dict[str, bool] = {}
    if len(checked) < len(kinds):
        tokenizer_run, reused["tokenizer"] = _tokenizer(
            preset, runs=runs, root=root, workers=workers
        )
    stage_seconds["tokenizer"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    expert_ids = ensure_datasets(expert_spec(cfg, data), root, workers=workers)
    stage_seconds["expert_video"] = time.perf_counter() - t0

    jobs = _Jobs(cfg, preset, tokenizer_run, runs, root, expert_ids, out)
    results, model_runs, candidates = jobs.run(kinds, checked, reused, stage_seconds)
    if same_lam and "bc_lam_small" in results:
        results["bc_lam_capacity"] = {**results["bc_lam_small"], "same_as": "bc_lam_small"}
    summary: dict[str, Any] = {
        "env_id": env_id(data),
        "num_agents": cfg.agents,
        "label_fraction": cfg.label_fraction,
        "label_count": cfg.label_count,
        "episodes": cfg.episodes,
        "eval_seed": EVAL_SEED,
        "wall_seconds": time.perf_counter() - start,
        "hardware": hardware(),
        "methods": {m: results[m] for m in METHOD_ORDER if m in results},
        "config": dataclasses.asdict(cfg),
        "tokenizer_run": None if tokenizer_run is None else str(tokenizer_run.path),
        "model_runs": model_runs,
        "model_candidates_val_loss": candidates,
        "reused": reused,
        "stage_seconds": stage_seconds,
        "expert_datasets": expert_ids,
    }
    out.write_results(summary)
    table = results_table(summary)
    write_text(out.path / "table.md", table + "\n")
    summary["out"] = str(out.path)
    return summary


def _check_request(cfg: PipelineConfig) -> None:
    """Refuse a request that would fail late (unknown methods, a bad label fraction, a planner
    search the latent family cannot run, no evaluation episodes)."""
    unknown = set(cfg.methods) - set(METHOD_ORDER)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(METHOD_ORDER)}")
    decoder_config(cfg)  # a bad label fraction fails here, before anything long starts
    bc_config(cfg)  # and a bad number of cloning steps
    if "planner_flam" in cfg.methods:
        check_planner_search(cfg.planner, cfg.action_kind)
    if cfg.episodes < 1 or cfg.planner_episodes < 0:
        raise ValueError(
            f"--episodes {cfg.episodes} / --planner-episodes {cfg.planner_episodes}: evaluate at "
            "least one episode (--planner-episodes 0 means as many as --episodes)"
        )


def _model_kinds(cfg: PipelineConfig) -> tuple[list[str], bool]:
    """The latent models the methods need, and whether ``lam_capacity`` is ``lam_small`` (with
    one agent, equal total capacity is FLAM's per-action codebook: the same LAM)."""
    kinds = [k for k in MODEL_KINDS if any(m.endswith(f"_{k}") for m in cfg.methods)]
    same_lam = cfg.agents == 1 and "lam_capacity" in kinds and "lam_small" in kinds
    if same_lam:
        kinds.remove("lam_capacity")
    return kinds, same_lam


def _given_runs(cfg: PipelineConfig, kinds: list[str], data: DatasetSpec) -> dict[str, ModelRun]:
    """The model runs passed on the command line (``--flam-run`` ...), each checked against the
    task (and FLAM's against the planner)."""
    given = {"flam": cfg.flam_run, "lam": cfg.lam_run, "lapo": cfg.lapo_run}
    checked = {
        k: check_fits_task(ModelRun.open(Path(given[k])), data, cfg.action_kind)
        for k in kinds
        if given.get(k)
    }
    if "flam" in checked and "planner_flam" in cfg.methods:
        check_planner_run(checked["flam"], cfg.planner)
    return checked


@dataclasses.dataclass
class _Jobs:
    """The pipeline's parallel part, on ``cfg.jobs`` processes: model trainings, the reference
    agents, and each model's branch as soon as its training is done. A branch is split where
    its parts are independent, so that a free worker can take one: the decoder first, then the
    controller beside the labelling, cloning and evaluation, then (FLAM) the planner, which
    needs the controller. The monolithic LAM's training and branch are the pipeline's longest
    chain; its controller no longer waits for its cloned policy."""

    cfg: PipelineConfig
    preset: Preset
    tokenizer_run: TokenizerRun | None
    runs: Path
    root: str | None
    expert_ids: dict[str, str]
    out: PipelineRun

    def run(
        self,
        kinds: list[str],
        checked: dict[str, ModelRun],
        reused: dict[str, bool],
        stage_seconds: dict[str, float],
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, float]]]:
        """Results per method, the model run of each kind, and the validation losses of FLAM's
        candidates (when there are several); ``reused`` and ``stage_seconds`` are filled in."""
        cfg, out = self.cfg, self.out
        results: dict[str, Any] = {}
        model_runs: dict[str, str] = {}
        candidates: dict[str, dict[str, float]] = {}
        done_parts: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in kinds}
        with (
            ProcessPoolExecutor(
                max_workers=max(cfg.jobs, 1), mp_context=get_context("spawn")
            ) as pool,
            stop_workers_on_error(pool),
        ):
            t0 = time.perf_counter()
            pending = self._trainings(pool, kinds, checked)
            data = self.preset.data
            reference = pool.submit(
                _reference_branch, self.expert_ids, data, self.root, cfg, self.out
            )
            chosen: dict[str, ModelRun] = {}
            parts: dict[Future[dict[str, Any]], tuple[str, str]] = {}
            while pending or parts:
                futures = [f for fs in pending.values() for f in fs] + list(parts)
                wait(futures, return_when=FIRST_COMPLETED)
                ready = [k for k, futs in pending.items() if all(f.done() for f in futs)]
                for kind in ready:
                    done_runs = [f.result() for f in pending.pop(kind)]
                    losses = {str(r.path): validation_loss(r) for _, r, _ in done_runs}
                    run = min((r for _, r, _ in done_runs), key=lambda r: losses[str(r.path)])
                    if len(done_runs) > 1:
                        candidates[kind] = losses
                    model_runs[kind] = str(run.path)
                    chosen[kind] = run
                    reused[kind] = all(u for _, _, u in done_runs)
                    stage_seconds[f"train_{kind}"] = time.perf_counter() - t0
                    parts[pool.submit(_decoder_part, kind, run, cfg, out)] = (kind, "decoder")
                for fut in [f for f in parts if f.done()]:
                    kind, name = parts.pop(fut)
                    done_parts[kind][name] = fut.result()
                    # The branch's wall time: from its training's end to its last part's end
                    # (its parts overlap, so the sum of their seconds is work, not wall).
                    end = time.perf_counter() - t0
                    stage_seconds[f"branch_wall_{kind}"] = end - stage_seconds[f"train_{kind}"]
                    run = chosen[kind]
                    if name == "decoder":
                        parts[pool.submit(_controller_part, kind, run, cfg, out)] = (
                            kind,
                            "controller",
                        )
                        if f"bc_{kind}" in cfg.methods:
                            args = (kind, run, self.expert_ids, self.root, cfg, out)
                            parts[pool.submit(_clone_part, *args)] = (kind, "clone")
                    elif name == "controller" and f"planner_{kind}" in cfg.methods:
                        parts[pool.submit(_planner_part, kind, run, cfg, out)] = (
                            kind,
                            "planner",
                        )
            ref = reference.result()
        stage_seconds.update({f"reference:{k}": v for k, v in ref.pop("_parts").items()})
        results.update(ref)
        for kind in kinds:
            branch = done_parts[kind]
            seconds = {k: v for part in branch.values() for k, v in part.pop("_parts").items()}
            # The seconds of the branch's parts added up (they overlap: see branch_wall_{kind}).
            stage_seconds[f"decode_clone_evaluate_{kind}"] = sum(seconds.values())
            stage_seconds.update({f"{kind}:{k}": v for k, v in seconds.items()})
            results.update(_branch_results(kind, branch, model_runs[kind]))
        return results, model_runs, candidates

    def _trainings(
        self, pool: ProcessPoolExecutor, kinds: list[str], checked: dict[str, ModelRun]
    ) -> dict[str, list[Future[tuple[str, ModelRun, bool]]]]:
        """One future per model run to train (FLAM: one per candidate seed); given runs are
        futures already done. The pool is first in, first out: FLAM's candidates go first, so
        its branch starts while LAM trains; the reference agents, queued next, take the worker
        FLAM's training frees, before any branch part is queued."""
        trainings: dict[str, list[Future[tuple[str, ModelRun, bool]]]] = {}
        for k in kinds:
            if k in checked:
                done: Future[tuple[str, ModelRun, bool]] = Future()
                done.set_result((k, checked[k], True))
                trainings[k] = [done]
                continue
            assert self.tokenizer_run is not None
            cfg = self.cfg
            seeds = [cfg.seed + i for i in range(cfg.flam_candidates if k == "flam" else 1)]
            trainings[k] = [
                pool.submit(_train_model, k, self.preset, self.tokenizer_run, self.runs, s)
                for s in seeds
            ]
        return trainings


def results_table(summary: dict[str, Any]) -> str:
    """The results as a markdown table (one row per method)."""
    lines = [
        f"{summary['env_id']}, {summary['num_agents']} agents, "
        f"{summary['config'].get('action_kind', 'fsq')} latent actions, "
        f"{summary['episodes']} episodes, "
        f"labels: {summary['label_fraction']:.0%} of transitions, {summary['hardware']}, "
        f"{summary['wall_seconds'] / 60:.1f} min",
        "",
        "| method | success rate | mean return | decoder accuracy | controller accuracy | "
        "expert-label accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in summary["methods"].items():
        dec = m.get("decoder_accuracy")
        lab = m.get("expert_label_accuracy")
        ctl = m.get("controller_accuracy")
        lines.append(
            f"| {name} | {m['success_rate']:.2f} | {m['mean_return']:.3f} | "
            f"{'-' if dec is None else f'{dec:.3f}'} | {'-' if ctl is None else f'{ctl:.3f}'} | "
            f"{'-' if lab is None else f'{lab:.3f}'} |"
        )
    return "\n".join(lines)
