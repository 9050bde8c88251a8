"""Policy success versus the number of agents: the video-to-policy pipeline over a grid.

One *cell* is one (agent count, seed): :func:`agents.pipeline.run_pipeline` with every method,
including the strong LAM (``bc_lam``), the LAPO-style model (``bc_lapo``) and LAM at FLAM's
per-action codebook (``bc_lam_small``) and at that codebook once per agent (``bc_lam_capacity``).
Finished cells are recorded in ``state.json`` (written atomically after each cell) with the
whole pipeline config they ran with and the training preset it resolved to; a cell is reused only
when both equal the ones asked for (otherwise it is recomputed, and the differing fields are printed), so an interrupted
benchmark continues where it stopped and a rerun with other settings never reports old numbers.
Outputs: the results, ``table.md`` and ``success_vs_agents.png``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from agents.pipeline import METHOD_ORDER, PipelineConfig, pipeline_preset, run_pipeline
from latentrl.artifacts import describe, differences, write_results
from latentrl.runs import as_stored, hardware, read_json, write_json, write_text

BENCHMARK_METHODS = METHOD_ORDER
PLOT_LABELS = {
    "expert": "expert (scripted)",
    "random": "random",
    "bc_true_actions": "BC, true actions",
    "bc_flam": "BC, FLAM labels",
    "bc_lam": "BC, LAM labels (joint-action latent)",
    "bc_lapo": "BC, LAPO-style labels",
    "bc_lam_small": "BC, LAM labels (one agent's codebook)",
    "bc_lam_capacity": "BC, LAM labels (one agent's codebook x N)",
    "planner_flam": "planner, FLAM",
}


def cell_key(agents: int, seed: int, action_kind: str = "fsq") -> str:
    """A cell's name in ``state.json``; continuous latent-action families get their own cells
    (FSQ cells keep the name they had before the family was a flag)."""
    key = f"agents={agents},seed={seed}"
    return key if action_kind == "fsq" else f"{key},action_kind={action_kind}"


def run_benchmark(
    base: PipelineConfig,
    agents: list[int],
    seeds: list[int],
    *,
    out: Path,
    runs: Path,
    root: str | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Run every cell that is missing or was computed with another config, then aggregate all
    cells of the grid."""
    state_path = out / "state.json"
    state: dict[str, Any] = read_json(state_path) if state_path.is_file() else {}
    for n in agents:
        for seed in seeds:
            key = cell_key(n, seed, base.action_kind)
            cfg = dataclasses.replace(base, agents=n, seed=seed)
            wanted = as_stored(cfg)
            # The training settings the preset resolves to (models, steps, data): a changed
            # preset changes the figures as much as a changed flag.
            preset = as_stored(pipeline_preset(cfg))
            if key in state:
                if "config" not in state[key] or "preset" not in state[key]:
                    print(
                        f"{key}: recorded without its config or preset (an earlier version): "
                        "recomputing"
                    )
                elif found := differences(
                    {"config": state[key]["config"], "preset": state[key]["preset"]},
                    {"config": wanted, "preset": preset},
                ):
                    print(
                        f"{key}: done before with other settings ({describe(found)}): recomputing"
                    )
                else:
                    print(f"{key}: done before ({state[key]['out']}), reused")
                    continue
            print(f"\n== {key}")
            summary = run_pipeline(cfg, runs=runs, root=root, workers=workers)
            state[key] = {
                "config": wanted,
                "preset": preset,
                "out": summary["out"],
                "wall_seconds": summary["wall_seconds"],
                "methods": {
                    m: {k: v for k, v in r.items() if not isinstance(v, (dict, list))}
                    for m, r in summary["methods"].items()
                },
            }
            write_json(state_path, state)
    kind = base.action_kind
    cells = {cell_key(n, s): state[cell_key(n, s, kind)] for n in agents for s in seeds}
    summary = aggregate(cells, agents, seeds)
    summary.update(hardware=hardware(), config=dataclasses.asdict(base), action_kind=kind)
    write_results(out, summary)
    table = benchmark_table(summary)
    write_text(out / "table.md", table + "\n")
    plot_success(summary, out / "success_vs_agents.png")
    return summary


def aggregate(cells: dict[str, Any], agents: list[int], seeds: list[int]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of each method's success rate, per agent count."""
    rows: dict[str, Any] = {}
    for n in agents:
        row: dict[str, Any] = {}
        for m in BENCHMARK_METHODS:
            values = [
                cells[cell_key(n, s)]["methods"][m]["success_rate"]
                for s in seeds
                if m in cells[cell_key(n, s)]["methods"]
            ]
            if values:
                row[m] = {
                    "success_mean": float(np.mean(values)),
                    "success_std": float(np.std(values)),
                    "seeds": len(values),
                }
            acc = [
                cells[cell_key(n, s)]["methods"][m].get("expert_label_accuracy")
                for s in seeds
                if m in cells[cell_key(n, s)]["methods"]
            ]
            if values and all(a is not None for a in acc) and acc:
                row[m]["expert_label_accuracy"] = float(np.mean(acc))
        rows[str(n)] = row
    wall = sum(c["wall_seconds"] for c in cells.values())
    return {"agents": agents, "seeds": seeds, "rows": rows, "cell_wall_seconds": wall}


def benchmark_table(summary: dict[str, Any]) -> str:
    """Success rate (mean ± sd over seeds) per agent count and method, as markdown."""
    methods = [m for m in BENCHMARK_METHODS if any(m in r for r in summary["rows"].values())]
    lines = [
        "| agents | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for n, row in summary["rows"].items():
        cells = []
        for m in methods:
            if m not in row:
                cells.append("-")
                continue
            r = row[m]
            text = f"{r['success_mean']:.2f}"
            if r["seeds"] > 1:
                text += f" ± {r['success_std']:.2f}"
            if "expert_label_accuracy" in r:
                text += f" (labels {r['expert_label_accuracy']:.2f})"
            cells.append(text)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_success(summary: dict[str, Any], path: Path) -> None:
    """Success rate versus number of agents, one line per method (error bars: sd over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    agents = summary["agents"]
    for m in BENCHMARK_METHODS:
        xs = [n for n in agents if m in summary["rows"][str(n)]]
        if not xs:
            continue
        ys = [summary["rows"][str(n)][m]["success_mean"] for n in xs]
        es = [summary["rows"][str(n)][m]["success_std"] for n in xs]
        style = "--" if m in ("expert", "random") else "-"
        ax.errorbar(xs, ys, yerr=es, marker="o", linestyle=style, capsize=3, label=PLOT_LABELS[m])
    ax.set_xscale("log", base=2)
    ax.set_xticks(agents, [str(n) for n in agents])
    ax.set_xlabel("agents")
    ax.set_ylabel("success rate (every agent on its goal)")
    ax.set_ylim(-0.03, 1.03)
    kind = summary.get("action_kind", "fsq")
    ax.set_title(
        f"MultiGrid Goal: policy from video, {kind} latent actions ({summary['hardware']})",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
