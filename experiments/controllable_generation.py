"""Controllable generation: move one entity with chosen latent actions, the others as in the video.

    python experiments/controllable_generation.py runs/<flam run>
    python experiments/controllable_generation.py runs/<flam run> --slots all --steps 8
    python experiments/controllable_generation.py runs/<flam run> --slots 4 --steps 8 --codes 0 0 5 5 8 8 6 6

From the first frame of a held-out video (the tokenizer run's ``codes/<split>.safetensors``) each
controlled entity (default: each agent, i.e. the slots holding its token at the start frame)
takes latent actions drawn from the prior (or ``--codes``), while every other slot follows the
latent actions inferred from the original video. Writes into ``RUN_DIR/control/``:

- ``entities.gif`` (and ``.mp4``) / ``entities.png``: the original video (tokenizer reconstruction), the
  rollout with every slot on its inferred actions, then one row per controlled entity (yellow
  boxes: the tokens its slots own);
- ``codes.gif`` (and ``.mp4``) / ``codes.png``: what each discrete code does: one row per FSQ index, applied at
  every step to the slots of row ``--code-entity``;
- ``control.json``: entities, slots, codes, and per row the fraction of pixels that differ from
  the uncontrolled rollout inside / outside the entity's mask (its tokens, dilated by one).

Scene-level models (LAM, OC+LAM) have one latent action per scene: their rows replace it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from latentrl.control import (
    code_usage,
    figure_rows,
    generate,
    load_held_out,
    load_scene,
    locality_survey,
    roomiest_entity,
    save_image,
    save_video,
    scene_entities,
    summary,
)
from latentrl.runs import write_json
from latentrl.views import labelled_strip, labelled_video


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a train_lam.py run folder (flam, lam or oclam)")
    parser.add_argument("--split", default="test", help="held-out split of the code cache")
    parser.add_argument("--episode", type=int, default=0, help="episode of the split")
    parser.add_argument("--start", type=int, default=0, help="start frame within the episode")
    parser.add_argument("--steps", type=int, default=10, help="frames to generate")
    parser.add_argument(
        "--slots",
        nargs="+",
        default=["agents"],
        help="what to control, one row each: 'agents' (each agent's slots), 'all' (every slot) "
        "or slot indices",
    )
    parser.add_argument(
        "--codes",
        type=int,
        nargs="+",
        default=None,
        help="FSQ code indices for every controlled entity, one per step (or one for all "
        "steps); default: drawn from the prior",
    )
    parser.add_argument(
        "--share",
        type=float,
        default=0.2,
        help="a slot joins an agent's entity if it holds at least this share of the agent's token",
    )
    parser.add_argument(
        "--single-slot",
        action="store_true",
        help="control only each agent's strongest slot, not every slot sharing its token",
    )
    parser.add_argument(
        "--code-entity",
        type=int,
        default=None,
        help="controlled row (0-based) that the per-code figure drives (default: the agent with "
        "the most free cells around it)",
    )
    parser.add_argument(
        "--prior",
        choices=["uniform", "empirical"],
        default="uniform",
        help="FSQ prior of the sampled codes: uniform (the bottleneck's; codes the model never "
        "uses make entities vanish or split) or empirical (how often each code is inferred on "
        "held-out windows, over all slots: label-free)",
    )
    parser.add_argument(
        "--survey",
        type=int,
        default=0,
        help="also measure locality over this many episodes (each agent controlled, and every "
        "slot controlled as the contrast); 0 skips it",
    )
    parser.add_argument(
        "--max-codes",
        type=int,
        default=16,
        help="per-code figure: with a bigger codebook, show only the (at most this many) codes "
        "inferred most often on held-out windows",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior samples")
    parser.add_argument("--out", type=Path, default=None, help="output folder (RUN_DIR/control)")
    parser.add_argument("--fps", type=int, default=2, help="GIF frames per second")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    run = load_held_out(args.run, args.split, args.device)
    scene = load_scene(run, args.episode, args.start, args.steps)
    entities = scene_entities(run, scene, args.slots, args.share, args.single_slot)
    usage = code_usage(run, seed=args.seed)
    probs = usage.frequency if usage is not None and args.prior == "empirical" else None
    code_entity = args.code_entity
    if code_entity is None:
        start_cells = None if scene.positions is None else scene.positions[0]
        code_entity = roomiest_entity(entities, start_cells, run.data.size)
    shown = None
    if usage is not None and len(usage.frequency) > args.max_codes:
        used = int((usage.frequency > 0).sum())
        top = torch.argsort(usage.frequency, descending=True)[: min(args.max_codes, used)]
        shown = sorted(top.tolist())
        print(
            f"{len(usage.frequency)} codes, {used} inferred on held-out windows: the per-code "
            f"figure shows the {len(shown)} most used"
        )
    gen = generate(
        run, scene, entities, args.codes, args.seed, code_entity, probs=probs, code_indices=shown
    )
    print(gen.note)

    out = args.out or args.run / "control"
    meanings = None if usage is None else usage.meanings
    entity_rows, code_rows = figure_rows(gen, run.model.config.factored, meanings)
    where = f"{args.split} episode {args.episode}, frames {args.start}..{args.start + args.steps}"
    save_video(labelled_video(entity_rows), out / "entities.gif", args.fps)
    save_image(labelled_strip(entity_rows, title=f"{args.run.name}, {where}: {gen.note}"),
               out / "entities.png")  # fmt: skip
    written = ["entities.gif", "entities.mp4", "entities.png"]
    if gen.code_entity is not None:
        save_video(labelled_video(code_rows, scale=3, label_width=170), out / "codes.gif", args.fps)
        title = f"each latent code applied to {gen.code_entity.name} at every step ({where})"
        strip = labelled_strip(code_rows, scale=3, label_width=170, title=title)
        save_image(strip, out / "codes.png")
        written += ["codes.gif", "codes.mp4", "codes.png"]
    result = {
        "run": str(args.run),
        "model": run.model.config.model,
        "split": args.split,
        "episode": args.episode,
        "start": args.start,
        "steps": args.steps,
        "seed": args.seed,
        "prior": args.prior,
        # Held-out use of each code that is inferred at all (frequency over every slot).
        "inferred_codes_held_out": None
        if usage is None
        else {
            str(c): {
                "frequency": round(float(usage.frequency[c]), 4),
                "meaning": None if meanings is None else meanings[c],
            }
            for c in usage.frequency.nonzero().flatten().tolist()
        },
        **summary(gen),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    if args.survey > 0 and run.model.config.factored:
        result["survey"] = locality_survey(run, args.survey, args.steps, args.seed, probs)
        result["wall_seconds"] = round(time.perf_counter() - start, 2)
    write_json(out / "control.json", result)

    print("\n| row | slots | codes | changed inside mask | changed outside mask |")
    print("|---|---|---|---:|---:|")
    for c in gen.entities + gen.per_code:
        loc = c.locality
        print(
            f"| {c.entity.name} | {list(c.entity.slots)} | {' '.join(c.steps)} | "
            f"{loc.changed_inside:.3f} | {loc.changed_outside:.4f} |"
        )
    if "survey" in result:
        survey = result["survey"]
        print(f"\nlocality over {survey['episodes']} episodes x agents: {json.dumps(survey)}")
    print(f"\nwrote {', '.join(str(out / w) for w in [*written, 'control.json'])}")


if __name__ == "__main__":
    main()
