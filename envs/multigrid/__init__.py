"""MultiGrid: up to 16 coloured agents moving at once in a minigrid room, rendered fast.

Modules, one concept each:

- ``palette``: the 16 agent colours, floor and wall;
- ``tiles``: how one cell looks (painters from minigrid's drawing helpers);
- ``core``: actions, the minigrid ``Grid`` layout, the simultaneous-move conflict rules;
- ``render``: the sprite-sheet renderer and the cell-by-cell reference renderer;
- ``env``: the Gymnasium environments ``MultiGridEmptyEnv`` and ``MultiGridGoalEnv``;
- ``registration``: the ``MultiGrid-*`` ids;
- ``policies``: random, expert, noisy-expert and mixed behaviour policies, and ``PolicyFactory``
  (a picklable policy-by-name for generation workers);
- ``bench``: throughput of the renderer, of ``env.step`` and of stock minigrid.

The names below are imported lazily (importing minigrid takes about half a second), so
``import envs`` stays cheap; ``from envs.multigrid import MultiGridGoalEnv`` loads what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envs.multigrid.core import Action
    from envs.multigrid.env import MultiGridEmptyEnv, MultiGridEnv, MultiGridGoalEnv
    from envs.multigrid.policies import (
        ExpertPolicy,
        MixedPolicy,
        MultiGridPolicy,
        NoisyExpertPolicy,
        PolicyFactory,
        RandomPolicy,
    )
    from envs.multigrid.registration import multigrid_env_ids, register_multigrid_envs

_LAZY: dict[str, str] = {
    "Action": "envs.multigrid.core",
    "MultiGridEnv": "envs.multigrid.env",
    "MultiGridEmptyEnv": "envs.multigrid.env",
    "MultiGridGoalEnv": "envs.multigrid.env",
    "MultiGridPolicy": "envs.multigrid.policies",
    "RandomPolicy": "envs.multigrid.policies",
    "ExpertPolicy": "envs.multigrid.policies",
    "NoisyExpertPolicy": "envs.multigrid.policies",
    "MixedPolicy": "envs.multigrid.policies",
    "PolicyFactory": "envs.multigrid.policies",
    "multigrid_env_ids": "envs.multigrid.registration",
    "register_multigrid_envs": "envs.multigrid.registration",
}

__all__ = [
    "Action",
    "ExpertPolicy",
    "MixedPolicy",
    "MultiGridEmptyEnv",
    "MultiGridEnv",
    "MultiGridGoalEnv",
    "MultiGridPolicy",
    "NoisyExpertPolicy",
    "PolicyFactory",
    "RandomPolicy",
    "multigrid_env_ids",
    "register_multigrid_envs",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
