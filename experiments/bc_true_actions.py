"""Behaviour cloning with TRUE expert actions: the ceiling of BC from decoded latent actions.

Plays the scripted MultiGrid expert for ``--episodes`` episodes (seeds from ``--data-seed``),
clones its joint actions from the frames (``agents.bc.train_bc``) and evaluates the clone and the
expert on ``--eval-episodes`` other episodes (seeds from ``--seed``). ``--finetune-steps N``
then continues with SB3 PPO from the cloned weights and evaluates again.

    python experiments/bc_true_actions.py --env MultiGrid-Goal-8x8-N4-v0 --episodes 2000 --steps 4000

Writes ``results.json`` and ``results.md`` to ``--out`` (and the policy with ``--save``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from agents.base import expert_agent
from agents.bc import BCConfig, BCPolicyAgent, finetune_ppo, train_bc
from agents.evaluate import collect, evaluate, make_env
from latentrl.artifacts import write_results
from latentrl.config import add_config_args, override


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="MultiGrid-Goal-8x8-N4-v0", help="Goal task id")
    parser.add_argument("--episodes", type=int, default=2000, help="expert episodes to clone")
    parser.add_argument(
        "--data-seed", type=int, default=1_000_000, help="seed of the first expert episode"
    )
    parser.add_argument("--eval-episodes", type=int, default=100, help="evaluation episodes")
    parser.add_argument("--eval-seed", type=int, default=0, help="seed of the first one")
    parser.add_argument(
        "--finetune-steps", type=int, default=0, help="PPO env steps after BC (0: none)"
    )
    parser.add_argument("--ppo-envs", type=int, default=8, help="PPO: parallel envs")
    parser.add_argument(
        "--ppo-rollout", type=int, default=128, help="PPO: steps per env per update (n_steps)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json/.md")
    parser.add_argument("--save", action="store_true", help="also save the policy to --out")
    parser.add_argument(
        "--policy", type=Path, default=None, help="evaluate (and fine-tune) a saved policy instead"
    )
    parser.add_argument("--progress", action="store_true", help="tqdm bars")
    add_config_args(parser, BCConfig, group="behaviour cloning")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = override(BCConfig(), vars(args))

    env = make_env(args.env)
    collect_s = 0.0
    if args.policy is not None:
        agent = BCPolicyAgent.load(args.policy)
        cfg = agent.config
    else:
        start = time.perf_counter()
        frames, actions, _ = collect(
            expert_agent(env), args.env, args.episodes, args.data_seed, progress=args.progress
        )
        collect_s = time.perf_counter() - start
        agent = train_bc(frames, actions, cfg, progress=args.progress)
    expert = evaluate(expert_agent(env), args.env, args.eval_episodes, args.eval_seed)
    if args.out is not None and args.save:
        agent.save(args.out / "policy")
    # Every way of acting, for comparison (argmax keeps deadlocks that sampling breaks).
    acting: dict[str, dict[str, object]] = {}
    for mode in ("argmax", "sample", "escape"):
        agent.acting = mode  # type: ignore[assignment]
        acting[mode] = evaluate(agent, args.env, args.eval_episodes, args.eval_seed)
    agent.acting = cfg.acting
    results: dict[str, object] = {
        "env": args.env,
        "episodes": args.episodes if args.policy is None else None,
        "policy": None if args.policy is None else str(args.policy),
        "pairs": agent.stats["pairs"],
        "collect_seconds": collect_s,
        "bc": {**acting[cfg.acting], **agent.stats},
        "acting": acting,
        "expert": expert,
        "config": dataclasses.asdict(cfg),
        "threads": args.threads,
    }
    if args.finetune_steps:
        start = time.perf_counter()
        tuned = finetune_ppo(
            agent,
            args.env,
            args.finetune_steps,
            n_envs=args.ppo_envs,
            seed=cfg.seed,
            ppo_kwargs={
                "n_steps": args.ppo_rollout,
                "batch_size": min(256, args.ppo_rollout * args.ppo_envs),
            },
        )
        results["finetuned"] = {
            **evaluate(tuned, args.env, args.eval_episodes, args.eval_seed),
            "ppo_steps": args.finetune_steps,
            "ppo_seconds": time.perf_counter() - start,
        }
    table = [
        "| agent | success | mean return | mean length |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {r['success_rate']:.3f} | {r['mean_return']:.3f} | {r['mean_length']:.1f} |"  # type: ignore[index]
            for name, r in (
                ("expert", expert),
                *((f"BC (true actions), acting {m}", r) for m, r in acting.items()),
            )
            + ((("BC + PPO", results["finetuned"]),) if "finetuned" in results else ())
        ),
    ]
    print(json.dumps(results, indent=1))
    print("\n".join(table))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_results(args.out, results)
        (args.out / "results.md").write_text("\n".join(table) + "\n")
    return results


if __name__ == "__main__":
    main()
