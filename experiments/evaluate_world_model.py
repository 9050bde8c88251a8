"""World-model evaluation of trained latent action models (FLAM Table 1): PSNR, dPSNR, SSIM.

    python experiments/evaluate_world_model.py runs/<flam run>
    python experiments/evaluate_world_model.py runs/<wm run> runs/<lam run> runs/<flam run>

For each run folder (made by train_lam.py): latent actions are inferred from test windows of
--steps + 1 frames (WM uses the true actions), the model rolls out --steps frames from the first
frame alone, once with those latent actions and once with latent actions drawn from its prior,
and the decoded frames are compared with the real ones: PSNR per step, dPSNR (inferred minus
prior), SSIM, exact-code accuracy, and the tokenizer's reconstruction PSNR (the ceiling).
Writes <run>/eval/{results.json, table.md, psnr_per_step.png, rollout.gif, rollout.mp4, rollout.png}.
With several runs, also prints one table in the layout of the paper's Table 1 and writes it with
a combined PSNR plot and rollout grid to --out. A missing test dataset is regenerated from the
tokenizer run's data.json (seeded: the same episodes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from latentrl.artifacts import ModelRun
from latentrl.config import add_config_args, override
from latentrl.evaluation import (
    EvalConfig,
    comparison_table,
    evaluate_run,
    run_table,
    write_comparison,
    write_run_outputs,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="model run folders")
    add_config_args(parser, EvalConfig, "evaluation")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="datasets root (default: $MINARI_DATASETS_PATH, else ~/.minari/datasets)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder of the comparison of several runs (default: runs/comparison_<time>)",
    )
    args = parser.parse_args()
    config = override(EvalConfig(), vars(args))
    if args.threads:
        torch.set_num_threads(args.threads)
    for run in args.runs:
        try:
            ModelRun.open(run)
        except (FileNotFoundError, ValueError) as e:
            parser.error(str(e))

    start = time.perf_counter()
    evaluations = []
    for run in args.runs:
        evaluation = evaluate_run(run, config, root=args.root)
        out = write_run_outputs(run, evaluation)
        print(run_table(evaluation.scores))
        print(f"wrote {out} ({evaluation.scores.wall_seconds:.1f} s)\n")
        evaluations.append(evaluation)
    if len(evaluations) > 1:
        out = args.out or Path("runs") / f"comparison_{time.strftime('%Y%m%d-%H%M%S')}"
        write_comparison(evaluations, out)
        print(comparison_table([e.scores for e in evaluations]))
        print(f"wrote {out}")
    print(f"total wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
