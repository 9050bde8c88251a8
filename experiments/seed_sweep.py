"""Seed robustness: one tiny-preset model per (room, seed), with its probe and slot binding.

    python experiments/seed_sweep.py --rooms empty goal --seeds 0 1 2 3 4 5 6 7 8 9 --jobs 2
    python experiments/seed_sweep.py --rooms goal --seeds 0 1 2 --out runs/learned -- --slot-init learned

Each cell is one `train_lam.py --preset tiny` run (one torch thread) in ``<out>/<room>__seed<S>/``
on a tokenizer run of that room (the newest finished one under ``--runs``; trained first if there
is none). A cell whose run finished with exactly the same arguments is kept, any other is trained
anew, so a stopped sweep resumes where it was. Arguments after ``--`` go to every run.
Writes ``<out>/seeds.json``, ``<out>/seeds.md`` (probe, chance, own_slot, same_slot, validation
loss, wall time per cell, and how many cells bind) and ``<out>/seeds.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from latentrl.artifacts import ModelRun, TokenizerRun
from latentrl.presets import get_preset
from latentrl.runs import write_json

SCRIPTS = Path(__file__).resolve().parent
BINDS = {"probe_accuracy": 0.8, "own_slot": 0.95}
"""A cell binds when its final probe and own_slot reach these (issue bar for seed robustness)."""


def _tokenizer(room: str, runs: Path) -> Path:
    data = get_preset("tiny").data
    spec = dataclasses.replace(data, task=room)
    found = TokenizerRun.newest_on(runs, spec)
    if found is not None:
        return found.path
    cmd = [sys.executable, str(SCRIPTS / "train_tokenizer.py"), "--preset", "tiny"]
    subprocess.run([*cmd, "--data-task", room, "--runs", str(runs), "--threads", "1"], check=True)
    found = TokenizerRun.newest_on(runs, spec)
    if found is None:
        raise RuntimeError(f"train_tokenizer.py left no finished tokenizer run in {runs}")
    return found.path


def _cell(out: Path, room: str, seed: int, args: list[str]) -> dict[str, float | int | str]:
    folder = out / f"{room}__seed{seed}"
    marker = folder / "cell.json"
    done = ModelRun.finished_in(folder)
    if done and marker.is_file() and json.loads(marker.read_text())["args"] == args:
        results = done[-1].results()
    else:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        write_json(marker, {"args": args})
        log = (folder / "train.log").open("w")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, str(SCRIPTS / "train_lam.py"), *args, "--runs", str(folder)]
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
        results = ModelRun.finished_in(folder)[-1].results()
    ev = results["eval"]
    row: dict[str, float | int | str] = {"room": room, "seed": seed}
    for key in ("probe_accuracy", "probe_chance", "own_slot", "same_slot", "val_loss"):
        row[key] = float(ev.get(key, float("nan")))
    row["wall_s"] = float(results["wall_seconds"])
    row["binds"] = int(all(float(ev.get(k, 0.0)) >= v for k, v in BINDS.items()))
    return row


def _table(rows: list[dict[str, float | int | str]], rooms: list[str]) -> str:
    lines = [
        "| room | seed | probe | chance | own_slot | same_slot | val loss | wall (s) | binds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['room']} | {r['seed']} | {r['probe_accuracy']:.3f} | {r['probe_chance']:.3f} | "
            f"{r['own_slot']:.3f} | {r['same_slot']:.3f} | {r['val_loss']:.3f} | "
            f"{r['wall_s']:.0f} | {'yes' if r['binds'] else 'no'} |"
        )
    for room in rooms:
        mine = [r for r in rows if r["room"] == room]
        lines.append(
            f"\n{room}: {sum(int(r['binds']) for r in mine)} of {len(mine)} seeds bind "
            f"(probe >= {BINDS['probe_accuracy']} and own_slot >= {BINDS['own_slot']})"
        )
    return "\n".join(lines)


def _plot(rows: list[dict[str, float | int | str]], rooms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, key in zip(axes, ("probe_accuracy", "own_slot"), strict=True):
        for room in rooms:
            mine = [r for r in rows if r["room"] == room]
            ax.plot([r["seed"] for r in mine], [r[key] for r in mine], "o-", label=room)
        ax.axhline(BINDS[key], color="grey", ls="--", lw=1)
        ax.set(xlabel="seed", title=key, ylim=(0, 1.02))
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", nargs="+", default=["empty", "goal"], help="MultiGrid tasks")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)), help="seeds")
    parser.add_argument("--model", default="flam", help="flam, lam, oclam or wm")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    parser.add_argument("--out", type=Path, default=Path("runs/seed_sweep"), help="output folder")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs"), help="where tokenizer runs are found/made"
    )
    args = parser.parse_args(argv)
    tokenizers = {room: _tokenizer(room, args.runs) for room in args.rooms}
    cells = [(room, seed) for seed in args.seeds for room in args.rooms]

    def run(cell: tuple[str, int]) -> dict[str, float | int | str]:
        room, seed = cell
        cmd = ["--preset", "tiny", "--model", args.model, "--data-task", room, "--seed", str(seed)]
        cmd += ["--tokenizer", str(tokenizers[room]), "--threads", "1", *extra]
        row = _cell(args.out, room, seed, cmd)
        print(f"{room} seed {seed}: probe {row['probe_accuracy']:.3f} own {row['own_slot']:.3f}")
        return row

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = sorted(pool.map(run, cells), key=lambda r: (str(r["room"]), int(r["seed"])))
    table = _table(rows, list(args.rooms))
    write_json(args.out / "seeds.json", {"rows": rows, "extra_args": extra})
    (args.out / "seeds.md").write_text(table + "\n")
    _plot(rows, list(args.rooms), args.out / "seeds.png")
    print(table)


if __name__ == "__main__":
    main()
