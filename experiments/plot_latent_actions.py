"""Latent-action views of a trained model: UMAP, slot attention, factor–entity correspondence.

    python experiments/plot_latent_actions.py runs/<flam run>
    python experiments/plot_latent_actions.py runs/<lam run> --no-umap

On held-out windows of the tokenizer run's code cache (``--split``, default test), writes into
``RUN_DIR/views/``:

- ``umap.png``: UMAP of the latent actions, one point per (transition, slot), coloured by the true
  action of the agent the slot is bound to (grey: no agent); scene models (LAM): one point per
  transition coloured by agent 0's action. Labels only colour the plot.
- ``attention.gif`` / ``attention.png``: slot attention over the frames of one window as a
  coloured overlay (slot models).
- ``correspondence.png``: slots x agents (how often slot k is agent j's slot, raw and aligned per
  window) and the DCI importance matrix; ``views.json``: the numbers, the DCI disentanglement /
  completeness / informativeness, and what each latent code does (its majority true action).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from latentrl.control import load_held_out, save_image, save_video
from latentrl.runs import write_json
from latentrl.views import MULTIGRID_ACTION_NAMES, latent_action_views


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a train_lam.py run folder (flam, lam or oclam)")
    parser.add_argument("--split", default="test", help="held-out split of the code cache")
    parser.add_argument("--windows", type=int, default=128, help="held-out windows")
    parser.add_argument("--window", type=int, default=8, help="frames per window")
    parser.add_argument("--max-points", type=int, default=4000, help="points in the UMAP")
    parser.add_argument("--no-umap", action="store_true", help="skip the UMAP (the slow part)")
    parser.add_argument(
        "--predictor",
        choices=["gbt", "logistic"],
        default="gbt",
        help="per-agent predictor of the DCI importance matrix (gradient boosting or logistic)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of window choice, UMAP, DCI")
    parser.add_argument("--out", type=Path, default=None, help="output folder (RUN_DIR/views)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    run = load_held_out(args.run, args.split, args.device)
    if run.data.env != "multigrid":
        raise SystemExit(
            f"{args.run} was trained on {run.data.env}: the views need per-agent actions and "
            "positions, which only MultiGrid code caches have"
        )
    views = latent_action_views(
        run.model,
        run.tokenizer,
        run.codes,
        run.cell_px,
        run.token_px,
        window=args.window,
        windows=args.windows,
        seed=args.seed,
        umap=not args.no_umap,
        max_points=args.max_points,
        predictor=args.predictor,
        action_names=MULTIGRID_ACTION_NAMES,
    )
    out = args.out or args.run / "views"
    for name, image in views.images.items():
        save_image(image, out / f"{name}.png")
    for name, video in views.videos.items():
        save_video(video, out / f"{name}.gif", fps=2)
    numbers = {
        "run": str(args.run),
        "split": args.split,
        **views.numbers,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out / "views.json", numbers)

    dci = numbers["dci"]
    keys = ("disentanglement", "completeness", "informativeness", "chance")
    scores = {k: {m: v[m] for m in keys} for k, v in dci.items() if isinstance(v, dict)}
    print(json.dumps({"dci": scores, "note": dci.get("note")}, indent=2))
    if "correspondence" in numbers:
        print("agent keeps its slot:", numbers["correspondence"]["agent_keeps_its_slot"])
    if "code_actions" in numbers:
        table = numbers["code_actions"]
        for code, row in table["inferred"].items():
            print(f"code {code}: {row['meaning']}")
        print(
            f"({table['codes'] - len(table['inferred'])} of {table['codes']} codes never inferred)"
        )
    files = [f"{n}.png" for n in views.images] + [
        f"{n}.{e}" for n in views.videos for e in ("gif", "mp4")
    ]
    print(f"wrote {out}: {', '.join(files)}, views.json")


if __name__ == "__main__":
    main()
