"""Training speed of the latent action models: steps/s and samples/s per model and preset.

    python experiments/bench_train.py                                  # tiny, every model
    python experiments/bench_train.py --presets tiny paper-multigrid --modes eager compiled
    python experiments/bench_train.py --models flam --baseline 6776f2a --repeats 5

Each measurement runs ``latentrl.train.train`` in a fresh process on synthetic codes shaped as
the preset's tokenizer would make them (no dataset, no prior run), with the preset's batch,
window and logging. Steps/s is timed between the starts of step ``--warmup`` and step
``--warmup + --steps``: start-up and, in compiled mode, compilation are excluded (the compile
time is printed apart). Modes: ``eager`` and ``compiled`` (``--compile``); threads: torch's
intra-op threads; devices: cpu, and cuda when present; precisions: ``bf16`` (autocast where the device
has native bf16 matmuls, training's ``--cpu-bf16`` on a CPU; else fp32, as the row's ``prec``
says) and ``fp32`` (training's CPU default).

``--baseline COMMIT`` also runs every eager measurement with the library of that commit
(checked out into a temporary git worktree), in turn with the current one (A B A B ...), and
prints the median of the pairwise speed ratios: both sides see the same machine load, so the
ratio stays meaningful on a busy machine. Timings: docs/research/engine_speed.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = ("flam", "lam", "oclam", "wm")
SYNTHETIC_CODES = 16
"""Distinct codes in the synthetic data (a tiny tokenizer run uses a handful): speed does not
depend on the values, only on the shapes."""


# -- one measurement (runs in its own process) --------------------------------------------------
def measure(args: argparse.Namespace) -> dict[str, object]:
    """Train ``args.model`` for warmup + steps steps on synthetic codes; return its speed."""
    import numpy as np
    import torch

    from latentrl.data.codes import CodeCache
    from latentrl.distributed import DistInfo
    from latentrl.models import build_model
    from latentrl.presets import get_preset
    from latentrl.train import train

    try:  # the device-resident sampler; a baseline checkout may predate it
        from latentrl.data.device_codes import DeviceCodes
    except ImportError:
        DeviceCodes = None

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    preset = get_preset(args.preset)
    tok, data, stage = preset.tokenizer, preset.data, preset.stage
    # Each model with its own preset settings (its latent); a baseline checkout may predate them.
    if hasattr(preset, "model_for"):
        base = preset.model_for(args.model)
    else:
        base = dataclasses.replace(preset.model, model=args.model)
    cfg = dataclasses.replace(
        base,
        codebook_size=tok.codebook_size,
        code_dim=tok.z_channels,
        grid=tok.grid,
        num_agents=data.agents if data.env == "multigrid" else 1,
        agent_actions=5 if data.env == "multigrid" else 15,
    )
    rng = np.random.default_rng(0)
    episodes, length = 8, max(data.steps + 1, stage.window)
    frames = episodes * length
    codes = rng.integers(0, SYNTHETIC_CODES, (frames, tok.num_tokens)).astype(np.int16)
    actions = rng.integers(0, cfg.agent_actions, (frames, cfg.num_agents)).astype(np.int64)
    cache = CodeCache(codes, np.arange(0, frames + 1, length, dtype=np.int64), actions)
    torch.manual_seed(0)
    model = build_model(cfg, torch.randn(tok.codebook_size, tok.z_channels))
    # A baseline checkout may predate the property; there only WM read true actions.
    labels = getattr(cfg, "conditioned_on_true_actions", args.model == "wm")
    batch = args.batch_size or preset.train.batch_size
    sampler = DeviceCodes(cache, stage.window, device) if DeviceCodes is not None else None
    starts: list[float] = []
    cpu: list[float] = []  # this process's CPU seconds: less sensitive to other jobs' load

    def sample(step: int, gen: torch.Generator):
        if device.type == "cuda":
            torch.cuda.synchronize()
        starts.append(time.perf_counter())
        cpu.append(time.process_time())
        if sampler is not None:
            return sampler.sample(batch, gen, labels=labels)
        return cache.sample(stage.window, batch, gen, labels=labels)

    total = args.warmup + args.steps + 1
    config = dataclasses.replace(
        preset.train,
        steps=total,
        batch_size=batch,
        device=args.device,
        threads=args.threads,
        compile=args.mode == "compiled",
        **(
            {"bf16": args.precision == "bf16", "cpu_bf16": args.precision == "bf16"}
            if args.precision
            else {}
        ),
        eval_every=10**9,
        checkpoint_every=10**9,
        media_every=0,
    )
    os.environ["TQDM_DISABLE"] = "1"
    with tempfile.TemporaryDirectory() as run:
        result = train(model, sample, config, Path(run), DistInfo(0, 1, device))
    seconds = starts[args.warmup + args.steps] - starts[args.warmup]
    out: dict[str, object] = {
        "steps_per_s": args.steps / seconds,
        "samples_per_s": args.steps * batch / seconds,
        "first_steps_s": starts[args.warmup] - starts[0],
        "steps_per_cpu_s": args.steps / (cpu[args.warmup + args.steps] - cpu[args.warmup]),
        "first_losses": result.losses[:5],
        "precision": getattr(result, "precision", "fp32"),
    }
    if args.mode == "compiled":
        from torch._dynamo.utils import counters

        out["graph_breaks"] = sum(counters["graph_break"].values())
    return out


# -- the driver -----------------------------------------------------------------------------------
def run_one(
    library: Path,
    preset: str,
    model: str,
    mode: str,
    threads: int,
    device: str,
    a: argparse.Namespace,
    precision: str | None = None,
) -> dict[str, object]:
    """One measurement in a fresh process whose ``latentrl`` is imported from ``library``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--preset", preset]
    cmd += ["--model", model, "--mode", mode, "--threads", str(threads), "--device", device]
    cmd += ["--steps", str(a.steps), "--warmup", str(a.warmup)]
    cmd += ["--batch-size", str(a.batch_size)]
    if precision:  # a baseline checkout measures its own default
        cmd += ["--precision", precision]
    env = {**os.environ, "PYTHONPATH": str(library), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measurement {preset}/{model}/{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_tree(commit: str, folder: Path) -> Path:
    """A detached git worktree of ``commit`` in ``folder`` (removed by :func:`drop_tree`)."""
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), commit],
        check=True,
        capture_output=True,
    )
    return folder


def drop_tree(folder: Path) -> None:
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)],
        check=False,
        capture_output=True,
    )


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["tiny"], help="presets to measure")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "compiled"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1], help="torch threads")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32"],
        choices=["bf16", "fp32"],
        help="bf16: autocast where the device has native bf16 (on a CPU: --cpu-bf16); fp32",
    )
    parser.add_argument(
        "--devices",
        nargs="+",
        default=None,
        help="cpu and/or cuda (default: cpu, plus cuda when present)",
    )
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=0, help="0 = the preset's batch")
    parser.add_argument("--repeats", type=int, default=1, help="measurements per setting")
    parser.add_argument(
        "--baseline", default=None, help="git commit whose library is measured in turn (eager)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    # One measurement (the driver starts these).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.threads = args.threads[0]
        print(json.dumps(measure(args)))
        return
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}; cpu count {os.cpu_count()}; devices {devices}")
    if torch.cuda.is_available():
        print(f"gpu: {torch.cuda.get_device_name(0)}")
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tree(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        try:
            header = f"{'preset':16} {'model':6} {'mode':9} {'prec':4} {'thr':>3} {'device':6} "
            header += f"{'steps/s':>8} {'samples/s':>10} {'first s':>8}"
            print(header + ("  baseline steps/s  ratio" if base else ""))
            for preset in args.presets:
                for model in args.models:
                    for mode in args.modes:
                        for precision in args.precisions:
                            for threads in args.threads:
                                for device in devices:
                                    key = (preset, model, mode, precision, threads, device)
                                    rows.append(measure_setting(key, base, args))
        finally:
            if base is not None:
                drop_tree(base)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def measure_setting(
    key: tuple[str, str, str, str, int, str], base: Path | None, args: argparse.Namespace
) -> dict[str, object]:
    """Median over ``--repeats`` of one setting (paired with the baseline where given)."""
    preset, model, mode, precision, threads, device = key
    ours, theirs, ratios, cpu_ratios, loss_diffs = [], [], [], [], []
    for _ in range(args.repeats):
        if base is not None:
            b = run_one(base, preset, model, "eager", threads, device, args)
            theirs.append(float(b["steps_per_s"]))  # type: ignore[arg-type]
        a = run_one(REPO, preset, model, mode, threads, device, args, precision)
        ours.append(a)
        if base is not None:
            ratios.append(float(a["steps_per_s"]) / theirs[-1])  # type: ignore[arg-type]
            cpu_ratios.append(float(a["steps_per_cpu_s"]) / float(b["steps_per_cpu_s"]))  # type: ignore[arg-type]
            # Same seed, same synthetic data: the losses must agree (up to float rounding).
            loss_diffs.append(
                max(
                    abs(x - y) / max(abs(y), 1e-12)
                    for x, y in zip(a["first_losses"], b["first_losses"], strict=True)  # type: ignore[arg-type]
                )
            )
    med = statistics.median(float(r["steps_per_s"]) for r in ours)  # type: ignore[arg-type]
    batch = args.batch_size or _batch(preset)
    row: dict[str, object] = {
        "preset": preset,
        "model": model,
        "mode": mode,
        "precision": ours[0].get("precision", precision),
        "threads": threads,
        "device": device,
        "steps_per_s": med,
        "steps_per_cpu_s": statistics.median(float(r["steps_per_cpu_s"]) for r in ours),  # type: ignore[arg-type]
        "samples_per_s": med * batch,
        "first_steps_s": statistics.median(float(r["first_steps_s"]) for r in ours),  # type: ignore[arg-type]
        "runs": [float(r["steps_per_s"]) for r in ours],  # type: ignore[arg-type]
    }
    if "graph_breaks" in ours[0]:
        row["graph_breaks"] = max(int(r["graph_breaks"]) for r in ours)  # type: ignore[arg-type]
    line = (
        f"{preset:16} {model:6} {mode:9} {row['precision']:4} {threads:>3} {device:6} {med:8.2f} "
    )
    line += f"{med * batch:10.1f} {row['first_steps_s']:8.1f}"
    if base is not None:
        row["baseline_steps_per_s"] = statistics.median(theirs)
        row["ratio_median"] = statistics.median(ratios)
        row["ratios"] = ratios
        line += f"  {statistics.median(theirs):16.2f}  {statistics.median(ratios):5.2f}"
        line += f" (pairs {min(ratios):.2f}..{max(ratios):.2f})"
        row["cpu_ratio_median"] = statistics.median(cpu_ratios)
        row["first_losses_max_rel_diff"] = max(loss_diffs)
        line += f"  cpu-time ratio {statistics.median(cpu_ratios):.2f}"
        line += f"  first-5-loss max rel diff {max(loss_diffs):.1e}"
    if "graph_breaks" in row:
        line += f"  graph breaks {row['graph_breaks']}"
    print(line, flush=True)
    return row


def _batch(preset: str) -> int:
    from latentrl.presets import get_preset

    return get_preset(preset).train.batch_size


if __name__ == "__main__":
    main()
