"""Behaviour policies for MultiGrid: random with action repeat, expert, noisy expert, and a
per-episode mixture of random play and expert play.

Every policy has ``reset(seed)`` and ``act(obs, info) -> int64 (N,)`` joint action. They read
only ``info`` (``agent_pos``, ``goal_pos``: int64 ``(N, 2)`` as ``(x, y)``), never the env, and
draw all randomness from a ``numpy.random.Generator`` seeded by ``reset``, so a seeded policy
on a seeded env replays exactly. :class:`PolicyFactory` builds one by name for an env
(picklable: dataset generation sends it to its worker processes).

The expert plans one step at a time for the whole team (prioritised planning):

1. each goal's static distance map (BFS over passable cells) is computed once and kept;
2. agents are planned in priority order: unfinished agents first, the farthest from its goal
   first (it bounds the episode length), ties by a random per-episode rank; an agent whose
   preferred cells are held by unfinished agents not yet planned is deferred once, so that a
   team walking in file follows its leader instead of side-stepping;
3. an agent takes a random move among those that shorten its distance and that the env will
   not block given the moves already planned (no shared target, no swap, no entering a cell
   whose occupant stays); failing that, a BFS detour around every other agent, which it then
   keeps to while its next cell is safe (re-planning greedily each step would oscillate back
   towards the obstacle); failing that, it asks agents resting on their goals along its path
   (ignoring them) to make way, and waits;
4. agents resting on their goals stay, unless asked to make way: then they step to a free
   neighbour off the asking agent's path and come back later;
5. an agent that has not got closer to its goal for ``stall_patience`` steps takes one random
   safe move, which breaks the rare livelocks that the rules above leave (e.g. two agents each
   on the other's goal: a swap, which the env forbids).

Because every planned move is conflict-free under the env's rules, the expert's executed
actions equal its requested actions (checked in the tests).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from envs.multigrid.core import ACTION_DELTAS, NUM_ACTIONS, Cell, build_room, passable_mask

POLICY_NAMES: tuple[str, ...] = ("random", "expert", "noisy-expert", "mixed")
"""Names :class:`PolicyFactory` accepts."""

_DELTA_TO_ACTION: dict[Cell, int] = {delta: a for a, delta in enumerate(ACTION_DELTAS)}
_MOVES: tuple[Cell, ...] = ACTION_DELTAS[1:]


class MultiGridPolicy(Protocol):
    """What every behaviour policy offers."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode with a fresh generator seeded by ``seed``."""
        ...

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The joint action, int64 ``(N,)``, for uint8 frame ``obs`` and the env's ``info``."""
        ...


class RandomPolicy:
    """Uniform random actions, each agent repeating its draw for ``repeat`` steps.

    Agents resample independently and out of phase: agent ``i`` keeps its first action for a
    uniform ``1..repeat`` steps, then draws a new one every ``repeat`` steps, so moves last long
    enough to be seen and agents do not all turn at the same frame.

    Args:
        num_agents: ``N``.
        repeat: steps per draw (1: a new action every step).
        seed: seed of the first episode (``reset`` reseeds).
    """

    def __init__(self, num_agents: int, repeat: int = 1, seed: int | None = None) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be at least 1, got {repeat}")
        self.num_agents = num_agents
        self.repeat = repeat
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._current = self._rng.integers(0, NUM_ACTIONS, self.num_agents, dtype=np.int64)
        self._remaining = self._rng.integers(1, self.repeat + 1, self.num_agents, dtype=np.int64)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        del obs, info  # blind by design
        expired = self._remaining == 0
        if expired.any():
            draws = self._rng.integers(0, NUM_ACTIONS, self.num_agents, dtype=np.int64)
            self._current = np.where(expired, draws, self._current)
            self._remaining[expired] = self.repeat
        self._remaining -= 1
        return self._current.copy()


def _bfs_distances(passable: list[list[bool]], source: Cell) -> list[list[int]]:
    """Steps from ``source`` to every cell over passable cells, -1 where unreachable."""
    height, width = len(passable), len(passable[0])
    dist = [[-1] * width for _ in range(height)]
    sx, sy = source
    dist[sy][sx] = 0
    queue = deque([source])
    while queue:
        x, y = queue.popleft()
        d = dist[y][x] + 1
        for dx, dy in _MOVES:
            nx, ny = x + dx, y + dy
            if 0 <= nx < width and 0 <= ny < height and passable[ny][nx] and dist[ny][nx] < 0:
                dist[ny][nx] = d
                queue.append((nx, ny))
    return dist


def _bfs_path(
    passable: list[list[bool]], start: Cell, goal: Cell, obstacles: set[Cell]
) -> list[Cell] | None:
    """Cells of a shortest path from ``start`` (excluded) to ``goal`` avoiding ``obstacles``."""
    height, width = len(passable), len(passable[0])
    parent: dict[Cell, Cell] = {start: start}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = []
            while cell != start:
                path.append(cell)
                cell = parent[cell]
            return path[::-1]
        x, y = cell
        for dx, dy in _MOVES:
            nxt = (x + dx, y + dy)
            nx, ny = nxt
            if (
                0 <= nx < width
                and 0 <= ny < height
                and passable[ny][nx]
                and nxt not in parent
                and nxt not in obstacles
            ):
                parent[nxt] = cell
                queue.append(nxt)
    return None


class ExpertPolicy:
    """Collision-avoiding shortest paths to every agent's goal (see the module docstring).

    Args:
        size: side of the env's room (minigrid's ``size``, walls included); ignored when
            ``passable`` is given.
        passable: bool ``(H, W)`` cells an agent may enter, ``[y, x]`` (``env.passable``);
            ``None`` for an empty walled room of ``size``.
        seed: seed of the first episode (``reset`` reseeds).
        stall_patience: steps without getting closer before an agent takes a random move.
    """

    def __init__(
        self,
        size: int = 32,
        passable: np.ndarray | None = None,
        seed: int | None = None,
        stall_patience: int = 6,
    ) -> None:
        mask = passable_mask(build_room(size)) if passable is None else np.asarray(passable)
        self._passable: list[list[bool]] = mask.astype(bool).tolist()
        height, width = mask.shape
        self._neighbours: dict[Cell, list[Cell]] = {
            (x, y): [
                (x + dx, y + dy)
                for dx, dy in _MOVES
                if 0 <= x + dx < width and 0 <= y + dy < height and mask[y + dy, x + dx]
            ]
            for y, x in np.argwhere(mask).tolist()
        }
        self.stall_patience = stall_patience
        # Distance maps depend only on the goal and the fixed walls: keep them across episodes
        # (at most one per free cell; BFS would otherwise dominate the expert's time).
        self._dist: dict[Cell, list[list[int]]] = {}
        self.reset(seed)

    @classmethod
    def for_env(cls, env: Any, seed: int | None = None) -> ExpertPolicy:
        """An expert for ``env`` (a MultiGrid env, wrapped or not), using its passable mask."""
        return cls(passable=env.unwrapped.passable, seed=seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._goals: list[Cell] = []
        self._rank: list[float] = []
        self._best: list[int] = []
        self._stall: list[int] = []
        self._paths: list[list[Cell]] = []

    def _start_episode(self, goals: list[Cell]) -> None:
        n = len(goals)
        self._goals = goals
        for g in goals:
            if g not in self._dist:
                self._dist[g] = _bfs_distances(self._passable, g)
        self._rank = self._rng.random(n).tolist()
        self._best = [1 << 30] * n
        self._stall = [0] * n
        self._paths = [[] for _ in range(n)]

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        del obs  # positions and goals come from info
        pos: list[Cell] = [(int(x), int(y)) for x, y in info["agent_pos"]]
        goals: list[Cell] = [(int(x), int(y)) for x, y in info["goal_pos"]]
        if any(x < 0 for x, _ in goals):
            raise ValueError("ExpertPolicy needs goals: use it on MultiGrid-Goal envs")
        if goals != self._goals:
            self._start_episode(goals)
        targets = self._plan(pos, goals)
        return np.array(
            [
                _DELTA_TO_ACTION[(tx - x, ty - y)]
                for (x, y), (tx, ty) in zip(pos, targets, strict=True)
            ],
            dtype=np.int64,
        )

    def _plan(self, pos: list[Cell], goals: list[Cell]) -> list[Cell]:
        """Next cell of every agent, conflict-free under the env's rules."""
        n = len(pos)
        dist = [self._dist[goals[i]][pos[i][1]][pos[i][0]] for i in range(n)]
        finished = [pos[i] == goals[i] for i in range(n)]
        for i in range(n):
            if dist[i] < self._best[i]:
                self._best[i], self._stall[i] = dist[i], 0
            elif not finished[i]:
                self._stall[i] += 1
            self._paths[i] = self._remaining_path(self._paths[i], pos[i])

        occupant = {cell: i for i, cell in enumerate(pos)}
        nxt: dict[int, Cell] = {}
        claimed: set[Cell] = set()
        make_way: dict[int, set[Cell]] = {}

        def safe(i: int, cell: Cell) -> bool:
            # Mirrors envs.multigrid.core.resolve_joint_action given the moves planned so far.
            if cell in claimed:
                return False
            j = occupant.get(cell)
            if j is None or j == i:
                return True
            return j in nxt and nxt[j] != cell and nxt[j] != pos[i]

        def safe_moves(i: int) -> list[Cell]:
            return [c for c in self._neighbours[pos[i]] if safe(i, c)]

        queue = deque(sorted(range(n), key=lambda i: (finished[i], -dist[i], self._rank[i])))
        deferred: set[int] = set()
        while queue:
            i = queue.popleft()
            path = self._paths[i]
            if finished[i]:
                target = pos[i]
                if i in make_way:
                    options = [c for c in safe_moves(i) if c not in make_way[i]]
                    target = self._pick(options, pos[i])
            elif self._stall[i] >= self.stall_patience and self._rng.random() < 0.5:
                # A coin flip, so that two agents stalled by each other rarely dodge in step.
                target = self._pick(safe_moves(i), pos[i])
                self._stall[i] = 0
                self._paths[i] = []
            elif path and safe(i, path[0]):
                target = path[0]  # keep to a committed detour: re-planning would oscillate
            else:
                greedy = self._greedy_cells(i, pos[i], dist[i])
                chosen = [c for c in greedy if safe(i, c)]
                # Wait for the plans of unfinished agents in the way: they will likely move on.
                # Resting agents are planned last and stay unless asked, so never wait on them.
                waiting_on = [
                    j
                    for c in greedy
                    if (j := occupant.get(c, i)) != i and j not in nxt and not finished[j]
                ]
                if not chosen and waiting_on and i not in deferred and queue:
                    deferred.add(i)
                    queue.append(i)
                    continue
                self._paths[i] = []
                if chosen:
                    target = self._pick(chosen, pos[i])
                else:
                    self._paths[i] = self._detour(
                        i, pos, goals, nxt, claimed, occupant, finished, make_way
                    )
                    target = self._paths[i][0] if self._paths[i] else pos[i]
                if target != pos[i] and not safe(i, target):
                    target = pos[i]
            nxt[i] = target
            claimed.add(target)
        return [nxt[i] for i in range(n)]

    def _remaining_path(self, path: list[Cell], cell: Cell) -> list[Cell]:
        """What is left of a committed path from ``cell``; empty if the agent strayed off it
        (a blocked or noisy move)."""
        if cell in path:
            return path[path.index(cell) + 1 :]
        return path if path and path[0] in self._neighbours[cell] else []

    def _greedy_cells(self, i: int, cell: Cell, d: int) -> list[Cell]:
        dist = self._dist[self._goals[i]]
        return [(x, y) for x, y in self._neighbours[cell] if dist[y][x] == d - 1]

    def _pick(self, options: Sequence[Cell], default: Cell) -> Cell:
        if not options:
            return default
        return options[int(self._rng.integers(len(options)))]

    def _detour(
        self,
        i: int,
        pos: list[Cell],
        goals: list[Cell],
        nxt: dict[int, Cell],
        claimed: set[Cell],
        occupant: dict[Cell, int],
        finished: list[bool],
        make_way: dict[int, set[Cell]],
    ) -> list[Cell]:
        """A path around the other agents, or ask resting agents to make way and wait ([])."""
        others = {c for c in pos if c != pos[i]}
        path = _bfs_path(self._passable, pos[i], goals[i], others | claimed)
        if path is not None:
            return path
        # Walled in: ignore agents resting on their goals; those on the way must step aside.
        movers = {pos[j] for j in range(len(pos)) if j != i and not finished[j]}
        path = _bfs_path(self._passable, pos[i], goals[i], movers | claimed)
        if path is not None:
            for cell in path:
                j = occupant.get(cell)
                if j is not None and finished[j] and j not in nxt:
                    make_way.setdefault(j, set()).update(path)
                    make_way[j].add(pos[i])
        return []


class NoisyExpertPolicy(ExpertPolicy):
    """The expert, except that each agent independently takes a uniform random action (any of
    the 5, STAY included) with probability ``eps`` per step; the env resolves the conflicts.

    Args:
        eps: per-agent, per-step probability of a random action.
        size, passable, seed, stall_patience: as :class:`ExpertPolicy`.
    """

    def __init__(
        self,
        eps: float = 0.1,
        size: int = 32,
        passable: np.ndarray | None = None,
        seed: int | None = None,
        stall_patience: int = 6,
    ) -> None:
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {eps}")
        self.eps = eps
        super().__init__(size=size, passable=passable, seed=seed, stall_patience=stall_patience)

    @classmethod
    def for_env(cls, env: Any, seed: int | None = None, eps: float = 0.1) -> NoisyExpertPolicy:
        """A noisy expert for ``env`` (wrapped or not), using its passable mask."""
        return cls(eps=eps, passable=env.unwrapped.passable, seed=seed)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        action = super().act(obs, info)
        noisy = self._rng.random(len(action)) < self.eps
        action[noisy] = self._rng.integers(0, NUM_ACTIONS, int(noisy.sum()))
        return action


class MixedPolicy:
    """Whole episodes of random play or of expert play: each episode is the expert's with
    probability ``expert_share``, drawn from the episode's seed, else random play.

    Why: a world model trained on random play alone rarely sees an agent standing on its goal
    (the expert's video is full of them), and one trained on expert video alone sees few of
    the moves random play covers. Mixing whole episodes keeps both kinds of motion intact
    (unlike :class:`NoisyExpertPolicy`, which perturbs every expert episode).

    Args:
        random: the random-play policy of the random episodes.
        expert: the expert of the expert episodes.
        expert_share: probability that an episode is the expert's.
    """

    def __init__(self, random: RandomPolicy, expert: ExpertPolicy, expert_share: float) -> None:
        if not 0.0 <= expert_share <= 1.0:
            raise ValueError(f"expert_share must lie in [0, 1], got {expert_share}")
        self.random, self.expert, self.expert_share = random, expert, expert_share
        self.active: RandomPolicy | ExpertPolicy = random

    def reset(self, seed: int | None = None) -> None:
        # The choice has a stream of its own, so each episode's moves equal those the pure
        # policy would make from the same seed.
        pick = np.random.default_rng(None if seed is None else [seed, _MIX_STREAM]).random()
        self.active = self.expert if pick < self.expert_share else self.random
        self.active.reset(seed)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return self.active.act(obs, info)


_MIX_STREAM = 0x6D6978
"""Second seed word of :class:`MixedPolicy`'s per-episode choice."""


@dataclass(frozen=True)
class PolicyFactory:
    """Builds a behaviour policy by name for a MultiGrid env, wrapped or not.

    Picklable, so that it can be sent to generation workers, which call it once on their own
    env (``latentrl.data.generate``'s policy-factory contract).

    Args:
        name: ``random`` (:class:`RandomPolicy`), ``expert`` (:class:`ExpertPolicy`, goal
            task only), ``noisy-expert`` (:class:`NoisyExpertPolicy`) or ``mixed``
            (:class:`MixedPolicy`).
        repeat: random policy (and the random episodes of ``mixed``): steps each draw is held
            (ignored by the experts).
        eps: noisy expert: per-agent, per-step probability of a random action.
        expert_share: ``mixed``: probability that an episode is the expert's.
    """

    name: str
    repeat: int = 1
    eps: float = 0.1
    expert_share: float = 0.5

    def __post_init__(self) -> None:
        if self.name not in POLICY_NAMES:
            raise ValueError(
                f"unknown MultiGrid policy {self.name!r}; choose from {', '.join(POLICY_NAMES)}"
            )
        if self.repeat < 1:
            raise ValueError(f"repeat must be at least 1, got {self.repeat}")
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {self.eps}")
        if not 0.0 <= self.expert_share <= 1.0:
            raise ValueError(f"expert_share must lie in [0, 1], got {self.expert_share}")

    def __call__(self, env: Any) -> MultiGridPolicy:
        base = env.unwrapped
        if self.name == "random":
            return RandomPolicy(base.num_agents, repeat=self.repeat)
        if self.name == "expert":
            return ExpertPolicy.for_env(env)
        if self.name == "mixed":
            return MixedPolicy(
                RandomPolicy(base.num_agents, repeat=self.repeat),
                ExpertPolicy.for_env(env),
                self.expert_share,
            )
        return NoisyExpertPolicy.for_env(env, eps=self.eps)
