"""Table 2 of the FLAM paper in one command: world-model PSNR and dPSNR against the number of
entities (MultiGrid agents), one column per model.

    python experiments/entity_sweep.py                                   # tiny preset, CPU
    python experiments/entity_sweep.py --agents 1 2 4 --steps-scale 0.5  # shorter budget
    python experiments/entity_sweep.py --preset paper-multigrid --device cuda

For each agent count: the preset's dataset with that many agents (generated if missing), a
tokenizer, then every model of --models trained on its codes and evaluated as
experiments/evaluate_world_model.py does (test windows of --eval-steps + 1 frames, rollouts from
the first frame). Writes into --out: sweep.json (state and every figure), table.md, results.json
(rows = entities, columns = models) and psnr_vs_entities.png; run folders go to --out/runs.

Resumable: sweep.json is rewritten atomically after every finished piece (tokenizer, training,
evaluation), a finished cell is never recomputed, a finished run in --out/runs is reused when its
whole config equals the one asked for, and an interrupted one of equal config is continued from
its last checkpoint. Rerunning the same command picks up where it stopped;
changing a setting that changes the figures (steps, data, preset...) is refused for an existing
--out.

Slots: FLAM and OC+LAM need K >= agents. K = max(K_preset, agents + K_preset - agents_preset):
the preset's spare slots are kept (tiny: K = 12 for 4 agents, so K = max(12, agents + 8);
paper-multigrid: K = 4 for 4 agents, so K = max(4, agents)).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from latentrl.artifacts import ModelRun, TokenizerRun, describe, differences, write_results
from latentrl.data.recipes import DatasetSpec
from latentrl.evaluation import (
    MODEL_LABELS,
    MODEL_ORDER,
    EvalConfig,
    evaluate_run,
    write_run_outputs,
)
from latentrl.metrics import MAX_PSNR
from latentrl.models import ModelConfig
from latentrl.presets import PRESETS, Preset, get_preset
from latentrl.runs import read_json, stop_workers_on_error, write_json, write_text
from latentrl.stages import model_config_for, train_model_stage, train_tokenizer_stage
from latentrl.train import TrainConfig

STATE = "sweep.json"
# Figures of the training run's last evaluation that say whether slots hold one agent each.
LATENT_FIGURES = ("probe_accuracy", "probe_chance", "own_slot", "same_slot")


# -- settings -------------------------------------------------------------------------------------
def slots_for(agents: int, preset: Preset) -> int:
    """K for ``agents``: the preset's K, grown so that its number of spare slots is kept."""
    spare = preset.model.num_slots - preset.data.agents
    return max(preset.model.num_slots, agents + spare)


def model_steps(model: str, preset: Preset, args: argparse.Namespace) -> int:
    if args.steps is not None:
        return args.steps
    return max(1, round(preset.train_for(model).steps * args.steps_scale))


def data_for(agents: int, preset: Preset, args: argparse.Namespace) -> DatasetSpec:
    return dataclasses.replace(
        preset.data,
        agents=agents,
        episodes=args.episodes or preset.data.episodes,
        steps=args.data_steps or preset.data.steps,
    )


def settings(preset: Preset, args: argparse.Namespace) -> dict[str, Any]:
    """Everything that changes the figures (not the sweep's extent, threads or device)."""
    return {
        "preset": args.preset,
        "seed": args.seed,
        "episodes": args.episodes or preset.data.episodes,
        "data_steps": args.data_steps or preset.data.steps,
        "tokenizer_steps": args.tokenizer_steps or preset.tokenizer_train.steps,
        "model_steps": {m: model_steps(m, preset, args) for m in MODEL_ORDER},
        "windows": args.windows,
        "eval_steps": args.eval_steps,
        "slot_rule": "max(K_preset, agents + K_preset - agents_preset)",
    }


def load_state(out: Path, wanted: dict[str, Any]) -> dict[str, Any]:
    path = out / STATE
    if not path.is_file():
        return {"settings": wanted, "tokenizers": {}, "cells": {}}
    state = read_json(path)
    found = differences(state["settings"], wanted)
    if found:
        raise SystemExit(
            f"{path} was made with other settings ({describe(found)}): rerun with the same "
            "flags, or pass another --out"
        )
    return state


# -- runs -----------------------------------------------------------------------------------------
def tokenizer_train(preset: Preset, args: argparse.Namespace) -> TrainConfig:
    return dataclasses.replace(
        preset.tokenizer_train,
        steps=args.tokenizer_steps or preset.tokenizer_train.steps,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )


def tokenizer_for(agents: int, preset: Preset, args: argparse.Namespace, runs: Path) -> Path:
    """The finished tokenizer run of these exact settings, else one trained (or continued)."""
    data = data_for(agents, preset, args)
    train_cfg = tokenizer_train(preset, args)
    settings = TokenizerRun.settings_for(data, preset.tokenizer, train_cfg)
    found = TokenizerRun.find(runs, settings)
    if found is not None:
        return found.path
    stopped = TokenizerRun.find_resumable(runs, settings)
    if stopped is not None:
        print(f"continuing the interrupted tokenizer run {stopped.path}")
    return train_tokenizer_stage(
        data,
        preset.tokenizer,
        train_cfg,
        root=args.root,
        runs=runs,
        workers=args.workers,
        resume=None if stopped is None else stopped.path,
    ).path


def cell_configs(
    agents: int, model: str, tokenizer: Path, args: argparse.Namespace
) -> tuple[ModelConfig, TrainConfig, dict[str, Any]]:
    """The model and training configs of one cell, and the whole settings a run of it has."""
    preset = get_preset(args.preset)
    tokenizer_run = TokenizerRun(tokenizer)
    model_cfg = dataclasses.replace(preset.model_for(model), num_slots=slots_for(agents, preset))
    train_cfg = dataclasses.replace(
        preset.train,
        steps=model_steps(model, preset, args),
        seed=args.seed,
        threads=args.threads,
        device=args.device,
    )
    filled = model_config_for(model_cfg, tokenizer_run.tokenizer_config(), tokenizer_run.data())
    return (
        model_cfg,
        train_cfg,
        ModelRun.settings_for(filled, train_cfg, preset.stage, tokenizer_run),
    )


def stale_cells(state: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Finished cells whose run folder is gone or was trained with other settings than these
    (e.g. after a preset changed): they are recomputed, not reported under the new config."""
    stale = []
    for key, cell in state["cells"].items():
        agents, model = key.split("/")
        run = ModelRun(Path(cell["run"]))
        tokenizer = state["tokenizers"].get(agents)
        if not run.finished or tokenizer is None:
            stale.append(key)
            continue
        wanted = cell_configs(int(agents), model, Path(tokenizer), args)[2]
        found = differences(run.settings(), wanted)
        if found:
            print(f"recomputing {key}: its run {run.path} has other settings ({describe(found)})")
            stale.append(key)
    return stale


def run_cell(
    agents: int, model: str, tokenizer: Path, args: argparse.Namespace, runs: Path
) -> dict[str, Any]:
    """Train (or continue, or reuse) one model and evaluate it; returns the cell's record."""
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    tokenizer_run = TokenizerRun(tokenizer)
    model_cfg, train_cfg, settings = cell_configs(agents, model, tokenizer, args)
    found = ModelRun.find(runs, model, settings)
    if found is None:
        stopped = ModelRun.find_resumable(runs, model, settings)
        if stopped is not None:
            print(f"continuing the interrupted {model} run {stopped.path}")
        found = train_model_stage(
            model_cfg,
            train_cfg,
            preset.stage,
            tokenizer_run=tokenizer_run,
            runs=runs,
            resume=None if stopped is None else stopped.path,
        )
    evaluation = evaluate_run(
        found.path,
        EvalConfig(windows=args.windows, steps=args.eval_steps, seed=args.seed, device=args.device),
        root=args.root,
    )
    write_run_outputs(found.path, evaluation)
    trained = found.results()
    return {
        "run": str(found.path),
        "num_slots": model_cfg.num_slots if model in ("flam", "oclam") else None,
        "train_steps": trained["steps"],
        "train_seconds": trained["wall_seconds"],
        "scores": evaluation.scores.as_json(),
    }


def latent_figures(results: dict[str, Any]) -> dict[str, float | None]:
    """Probe, chance, own_slot and same_slot from a model run's last evaluation (None where the
    model has no per-agent latents, e.g. WM)."""
    last = results.get("eval") or {}
    return {k: last.get(k) for k in LATENT_FIGURES}


# -- report ---------------------------------------------------------------------------------------
def rows(state: dict[str, Any], agents: list[int], models: list[str]) -> list[dict[str, Any]]:
    """One row per agent count: the figures of each model (None where not done yet)."""
    out = []
    for a in agents:
        row: dict[str, Any] = {"agents": a}
        for m in models:
            cell = state["cells"].get(f"{a}/{m}")
            if cell is None:
                row[m] = None
                continue
            scores = cell["scores"]
            row[m] = {
                "psnr_1step": scores["summary"]["psnr_1step"],
                "dpsnr_mean": scores["summary"]["dpsnr_mean"],
                "tokenizer_psnr": scores["summary"]["tokenizer_psnr"],
                # Unlike PSNR, comparable across agent counts whatever each tokenizer's quality.
                "codes_right_1step": scores["code_accuracy_curve"][0],
                "ssim_1step": scores["summary"]["ssim_1step"],
                # Read from the run folder, which every kept cell has (stale_cells).
                **latent_figures(ModelRun(Path(cell["run"])).results()),
                "num_slots": cell["num_slots"],
                "run": cell["run"],
            }
        out.append(row)
    return out


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(figures: dict[str, Any] | None, key: str, digits: int) -> str:
    """One table entry; the probe with its chance level beside it."""
    if figures is None or figures.get(key) is None:
        return "-"
    if key == "probe_accuracy" and figures.get("probe_chance") is not None:
        return f"{figures[key]:.{digits}f} ({figures['probe_chance']:.{digits}f})"
    return _fmt(figures[key], digits)


def table(table_rows: list[dict[str, Any]], models: list[str], state: dict[str, Any]) -> str:
    """Markdown: one row per agent count; PSNR, ΔPSNR and exact codes per model."""
    ordered = [m for m in MODEL_ORDER if m in models]
    figures = [
        ("PSNR", "psnr_1step", 2),
        ("ΔPSNR", "dpsnr_mean", 2),
        ("SSIM", "ssim_1step", 3),
        ("codes", "codes_right_1step", 3),
        ("probe", "probe_accuracy", 2),
        ("own_slot", "own_slot", 2),
    ]
    head = "| # entities | K | " + " | ".join(
        f"{MODEL_LABELS[m]} {name}" for name, _, _ in figures for m in ordered
    )
    lines = [
        head + " | tokenizer ceiling |",
        "|---:|---:|" + "---:|" * (len(figures) * len(ordered) + 1),
    ]
    for row in table_rows:
        cells = [row[m] for m in ordered]
        done = [c for c in cells if c is not None]
        slots = next((c["num_slots"] for c in done if c["num_slots"] is not None), None)
        values = [_cell(c, key, digits) for _, key, digits in figures for c in cells]
        ceiling = _fmt(done[0]["tokenizer_psnr"] if done else None, 2)
        lines.append(
            f"| {row['agents']} | {slots or '-'} | " + " | ".join(values) + f" | {ceiling} |"
        )
    s = state["settings"]
    lines += [
        "",
        f"Preset {s['preset']}, seed {s['seed']}; {s['episodes']} episodes of {s['data_steps']} "
        f"steps per agent count; tokenizer {s['tokenizer_steps']} steps; model steps "
        + ", ".join(f"{MODEL_LABELS[m]} {s['model_steps'][m]}" for m in ordered)
        + f". PSNR (dB): 1 step, per frame (capped at {MAX_PSNR:.0f} dB) then mean over "
        f"{s['windows']} test windows; ΔPSNR (dB): mean of steps 1-{s['eval_steps']}; codes: "
        "fraction of exactly right code indices at step 1 (comparable across agent counts, "
        "unlike PSNR, whose ceiling is each tokenizer's); SSIM at step 1; probe: per-agent "
        "latent-action probe and own_slot: slot binding, from each training run's last "
        "evaluation (- for models without per-agent latents); "
        f"K = {s['slot_rule']} (FLAM, OC+LAM).",
    ]
    return "\n".join(lines) + "\n"


def plot(table_rows: list[dict[str, Any]], models: list[str], path: Path) -> None:
    fig = Figure(figsize=(10, 4))
    ax_psnr, ax_gap = fig.subplots(1, 2)
    for m in [m for m in MODEL_ORDER if m in models]:
        done = [(r["agents"], r[m]) for r in table_rows if r[m] is not None]
        if not done:
            continue
        x = [a for a, _ in done]
        ax_psnr.plot(x, [c["psnr_1step"] for _, c in done], marker="o", label=MODEL_LABELS[m])
        ax_gap.plot(x, [c["dpsnr_mean"] for _, c in done], marker="o", label=MODEL_LABELS[m])
    ceiling = [
        (r["agents"], next(c["tokenizer_psnr"] for c in r.values() if isinstance(c, dict)))
        for r in table_rows
        if any(isinstance(c, dict) for c in r.values())
    ]
    if ceiling:
        ax_psnr.plot(*zip(*ceiling, strict=True), ls=":", color="grey", label="tokenizer ceiling")
    for ax, name in ((ax_psnr, "PSNR, 1 step (dB)"), (ax_gap, "ΔPSNR, mean over rollout (dB)")):
        ax.set_xscale("log", base=2)
        agents = [r["agents"] for r in table_rows]
        ax.set_xticks(agents, [str(a) for a in agents])
        ax.set(xlabel="number of entities (agents)", ylabel=name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def report(state: dict[str, Any], args: argparse.Namespace) -> str:
    table_rows = rows(state, args.agents, args.models)
    text = table(table_rows, args.models, state)
    write_text(args.out / "table.md", text)
    write_results(args.out, {"settings": state["settings"], "rows": table_rows})
    plot(table_rows, args.models, args.out / "psnr_vs_entities.png")
    return text


# -- main -----------------------------------------------------------------------------------------
def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--agents", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="entity counts (rows)")
    add(
        "--models",
        nargs="+",
        default=["lam", "flam"],
        choices=list(MODEL_ORDER),
        help="models (columns; default: lam flam)",
    )
    add("--preset", default="tiny", choices=sorted(PRESETS), help="named settings (default: tiny)")
    add(
        "--out",
        type=Path,
        default=Path("runs/entity_sweep"),
        help="sweep folder: state, table, plot, run folders (default: runs/entity_sweep)",
    )
    add("--root", type=Path, default=None, help="datasets root (default: Minari's)")
    add("--steps", type=int, default=None, help="training steps of every model (default: preset's)")
    add(
        "--steps-scale",
        type=float,
        default=1.0,
        help="multiply the preset's per-model steps, keeping their ratios "
        "(tiny: FLAM 1200, LAPO-style 1300, LAM/OC+LAM/WM 1000)",
    )
    add("--tokenizer-steps", type=int, default=None, help="tokenizer steps (default: preset's)")
    add("--episodes", type=int, default=None, help="episodes per dataset (default: preset's)")
    add("--data-steps", type=int, default=None, help="steps per episode (default: preset's)")
    add("--windows", type=int, default=256, help="test windows per evaluation (default: 256)")
    add("--eval-steps", type=int, default=10, help="rollout steps in evaluation (default: 10)")
    add("--seed", type=int, default=0, help="seed of data sampling, initialisation and evaluation")
    add("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads per job (0 = torch's default; with --jobs: cores / jobs)",
    )
    add(
        "--jobs",
        type=int,
        default=2,
        help="models trained at once, in separate processes (2 on a 2-core CPU: one torch thread "
        "each runs faster than one job on two threads)",
    )
    add("--workers", type=int, default=2, help="dataset generation processes")
    args = parser.parse_args()
    if get_preset(args.preset).data.env != "multigrid":
        parser.error(f"preset {args.preset} is not MultiGrid: entities are MultiGrid agents")
    if args.eval_steps > (args.data_steps or get_preset(args.preset).data.steps):
        parser.error("--eval-steps must be at most --data-steps (windows lie inside episodes)")
    if args.jobs > 1 and not args.threads:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    return args


def main() -> None:
    args = parse()
    preset = get_preset(args.preset)
    start = time.perf_counter()
    runs = args.out / "runs"
    state = load_state(args.out, settings(preset, args))
    write_json(args.out / STATE, state)
    print(
        "slots (FLAM, OC+LAM): K = max(K_preset, agents + K_preset - agents_preset) = "
        + ", ".join(f"{a} agents -> K = {slots_for(a, preset)}" for a in args.agents)
    )
    if args.threads:
        torch.set_num_threads(args.threads)

    for key in stale_cells(state, args):
        del state["cells"][key]
    todo = [(a, m) for a in args.agents for m in args.models if f"{a}/{m}" not in state["cells"]]
    for a in sorted({a for a, _ in todo}):
        if str(a) not in state["tokenizers"]:
            state["tokenizers"][str(a)] = str(tokenizer_for(a, preset, args, runs))
            write_json(args.out / STATE, state)

    def record(a: int, m: str, cell: dict[str, Any]) -> None:
        state["cells"][f"{a}/{m}"] = cell
        write_json(args.out / STATE, state)
        print(
            f"done: {a} agents, {m}: PSNR {cell['scores']['summary']['psnr_1step']:.2f} dB, "
            f"dPSNR {cell['scores']['summary']['dpsnr_mean']:.2f} dB"
        )
        report(state, args)

    print(f"{len(todo)} cells to compute, {len(args.agents) * len(args.models) - len(todo)} done")
    if args.jobs > 1 and len(todo) > 1:
        with (
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool,
            stop_workers_on_error(pool),
        ):
            futures = {
                pool.submit(run_cell, a, m, Path(state["tokenizers"][str(a)]), args, runs): (a, m)
                for a, m in todo
            }
            for future in as_completed(futures):
                record(*futures[future], future.result())
    else:
        for a, m in todo:
            record(a, m, run_cell(a, m, Path(state["tokenizers"][str(a)]), args, runs))
    print(report(state, args))
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
