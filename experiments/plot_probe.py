"""Latent-action probe accuracy (and slot binding) against wall time for several runs.

    python experiments/plot_probe.py runs/<flam run> runs/<lam run> --out probe.png

Reads each run's ``results.json`` (its ``curve``: probe accuracy, chance, own_slot, same_slot at
every evaluation), prints a markdown table of the last evaluation and writes one PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from latentrl.artifacts import ModelRun


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run folders written by train_lam.py")
    parser.add_argument("--out", type=Path, default=Path("probe_vs_time.png"), help="PNG to write")
    args = parser.parse_args()

    fig, (ax_probe, ax_bind) = plt.subplots(1, 2, figsize=(10, 4))
    print(
        "| run | model | steps | wall s | probe | chance | own slot | same slot |\n|---|---|---:|---:|---:|---:|---:|---:|"
    )
    for run in args.runs:
        res = ModelRun(run).results()
        curve = [c for c in res.get("curve", []) if "probe_accuracy" in c]
        if not curve:
            raise SystemExit(f"{run} has no probe curve (WM runs and Procgen runs have none)")
        label = f"{res['model']} ({run.name.split('__')[-1]})"
        t = [c["wall_s"] for c in curve]
        ax_probe.plot(t, [c["probe_accuracy"] for c in curve], marker="o", label=label)
        ax_probe.plot(t, [c["probe_chance"] for c in curve], ls=":", color="grey")
        if res["model"] in ("flam", "oclam"):
            ax_bind.plot(t, [c["own_slot"] for c in curve], marker="o", label=f"{label} own slot")
            ax_bind.plot(
                t, [c["same_slot"] for c in curve], marker="x", ls="--", label=f"{label} same slot"
            )
        last = curve[-1]
        print(
            f"| {run.name} | {res['model']} | {res['steps']} | {res['wall_seconds']:.0f} | "
            f"{last['probe_accuracy']:.3f} | {last['probe_chance']:.3f} | "
            f"{last.get('own_slot', float('nan')):.3f} | {last.get('same_slot', float('nan')):.3f} |"
        )
    ax_probe.set(
        xlabel="training wall time (s)",
        ylabel="per-agent probe accuracy",
        title="latent-action probe (dotted: chance)",
        ylim=(0, 1),
    )
    ax_bind.set(
        xlabel="training wall time (s)", ylabel="fraction", title="slot binding", ylim=(0, 1.05)
    )
    ax_probe.legend(fontsize=7)
    ax_bind.legend(fontsize=7)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
