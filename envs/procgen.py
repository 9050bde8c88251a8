"""Procgen games as single-agent Gymnasium environments, with episode boundaries made exact.

Shapes (S = ``frame_size``; 64 native, anything else is box-filtered from procgen's 512 px render):

    observation           uint8 (S, S, 3), channel-last RGB
    action                int in [0, 15)  (procgen's 15 key combinations, the same for all games)
    info["action"]        int64 (1,)  the executed action; -1 in the info returned by reset()
    info["executed_action"] int64 (1,)  identical to ``action``: Procgen has one agent and no
                          action noise, so datasets can read both keys as they do for MultiGrid
    info["level_seed"]    int  the procgen level of the episode this step belongs to
    info["prev_level_complete"] bool  True only on the final step of an episode whose level was won
    info["episode_step"]  int  steps taken in the current episode (0 after reset)
    info["frame_is_repeat"] bool  True only on the final step of an episode (see below)

Episode boundaries (the contract). procgen resets itself inside the step that ends an episode,
so the observation it returns with ``first=True`` is the first frame of the NEXT episode, and the
true last frame of the finished episode is never rendered. This env never lets that frame leak:

* the step whose gym3 ``first`` flag is set ends the episode: ``terminated`` or ``truncated``
  (never both) is True, the reward is the finished episode's last reward, ``level_seed`` is the
  finished episode's level, and the observation is a copy of the previous observation (the last
  frame that belongs to the finished episode) with ``info["frame_is_repeat"] = True`` so that
  datasets can drop it (the transition into it is not a real dynamics transition);
* the next episode's first frame is kept and returned by the following ``reset()`` without
  stepping the simulator, so no frame is lost and nothing crosses two episodes;
* ``step()`` after the end of an episode raises until ``reset()`` is called;
* ``reset()`` in the middle of an episode abandons it with procgen's force-reset action (-1)
  and returns the first frame of a fresh level.

An episode of L actions therefore yields L + 1 observations, of which the last is a repeat.

Terminated versus truncated: procgen ends an episode when the game says so (death, level won) or
when its own step timeout is reached (1000 steps for most games; see ``PROCGEN_TIMEOUTS``). Its
info only says whether the level was completed, so an episode that ends exactly at the timeout
without completing the level is reported as truncated, every other ending as terminated. A death
on the very step of the timeout is indistinguishable and is reported as truncated. No
``TimeLimit`` wrapper is registered: procgen's own timeouts are the limit.

Importing this module does not import procgen or gym3 (the first import loads the sprite assets,
which takes seconds); they are loaded in the constructor.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

GAMES: tuple[str, ...] = (
    "bigfish",
    "bossfight",
    "caveflyer",
    "chaser",
    "climber",
    "coinrun",
    "dodgeball",
    "fruitbot",
    "heist",
    "jumper",
    "leaper",
    "maze",
    "miner",
    "ninja",
    "plunder",
    "starpilot",
)

# procgen's per-game step timeout (Game::timeout), read from the serialized state of
# procgen-mirror 0.10.7 for every game in easy and hard mode (identical in both). procgen does not
# report it, and we need it to tell a timeout (truncation) from a game ending (termination).
PROCGEN_TIMEOUTS: dict[str, int] = {
    **dict.fromkeys(GAMES, 1000),
    "bigfish": 6000,
    "bossfight": 4000,
    "plunder": 4000,
    "leaper": 500,
    "maze": 500,
}

NUM_ACTIONS = 15
NATIVE_SIZE = 64
RENDER_SIZE = 512  # procgen's high-resolution render, delivered in gym3's info["rgb"]

# Which games accept which distribution mode. procgen checks this with a C assertion that aborts
# the whole Python process, so it must be checked here first.
_MODE_GAMES: dict[str, tuple[str, ...]] = {
    "easy": GAMES,
    "hard": GAMES,
    "extreme": ("chaser", "dodgeball", "leaper", "starpilot"),
    "memory": ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner"),
    "exploration": (
        "caveflyer",
        "climber",
        "coinrun",
        "heist",
        "jumper",
        "leaper",
        "maze",
        "ninja",
    ),
}

_INT32_MAX = 2**31 - 1


def env_id(game: str) -> str:
    """The Gymnasium id registered for ``game``, e.g. ``Procgen-Coinrun-v0``."""
    return f"Procgen-{game.capitalize()}-v0"


class ProcgenEnv(gym.Env[np.ndarray, int]):
    """One Procgen game (``procgen.ProcgenGym3Env`` with ``num=1``) as a Gymnasium env.

    ## Description
    One of the 16 procedurally generated Procgen games (Cobbe et al., 2020). Backgrounds are off
    by default, as in the FLAM paper, so the frames show the entities on flat colour.
    ``distribution_mode`` defaults to ``"easy"``: LAPO's code builds its Procgen envs with
    ``distribution_mode="easy", num_levels=0``, and easy is the mode of the Procgen paper's
    25M-step budget (hard needs 200M), which matters for training experts here. procgen's own
    default is ``"hard"``; pass it explicitly to get it. ``num_levels=0`` (the default) samples
    from all 2**31 levels.

    ## Action space
    ``Discrete(15)``: procgen's key combinations, in its order: LEFT-DOWN, LEFT, LEFT-UP, DOWN,
    NOOP, UP, RIGHT-DOWN, RIGHT, RIGHT-UP, D, A, W, S, Q, E. Games ignore the keys they do not use.

    ## Observation space
    ``Box(0, 255, (S, S, 3), uint8)`` with ``S = frame_size``. At 64 the frame is procgen's native
    observation, the fast path. Any other size is procgen's anti-aliased 512 px render
    box-filtered down to ``S``; rendering at 512 px dominates such a step, so it is much slower
    (figures: docs/research/env_speed.md, ``experiments/bench_envs.py``).

    ## Rewards
    procgen's game rewards, unchanged (typically 10 for completing a level).

    ## Episode end
    See the module docstring for the exact contract: the final step returns a repeat of the last
    frame flagged by ``info["frame_is_repeat"]``, and ``reset()`` returns the next episode's
    first frame. ``truncated`` means procgen's own step timeout (``PROCGEN_TIMEOUTS``) was hit.

    ## Arguments
    game: one of ``GAMES``.
    frame_size: side of the square observation in pixels, 1 to 512.
    distribution_mode: "easy", "hard", "extreme", "memory" or "exploration" (game-dependent).
    num_levels: number of distinct levels (0 = unbounded); start_level: first level seed.
    use_backgrounds, center_agent, paint_vel_info, restrict_themes, use_monochrome_assets:
        procgen's rendering options.
    render_mode: None or "rgb_array" (``render()`` returns the current observation frame).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        game: str = "coinrun",
        *,
        frame_size: int = NATIVE_SIZE,
        distribution_mode: str = "easy",
        num_levels: int = 0,
        start_level: int = 0,
        use_backgrounds: bool = False,
        center_agent: bool = True,
        paint_vel_info: bool = False,
        restrict_themes: bool = False,
        use_monochrome_assets: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if game not in GAMES:
            raise ValueError(f"unknown Procgen game {game!r}; valid games: {', '.join(GAMES)}")
        if distribution_mode not in _MODE_GAMES:
            raise ValueError(
                f"unknown distribution_mode {distribution_mode!r}; "
                f"valid modes: {', '.join(_MODE_GAMES)}"
            )
        if game not in _MODE_GAMES[distribution_mode]:
            raise ValueError(
                f"{game!r} does not support distribution_mode {distribution_mode!r}; games that "
                f"do: {', '.join(_MODE_GAMES[distribution_mode])}"
            )
        if not 1 <= int(frame_size) <= RENDER_SIZE:
            raise ValueError(f"frame_size must be in [1, {RENDER_SIZE}], got {frame_size}")
        for name, value in (("num_levels", num_levels), ("start_level", start_level)):
            if not 0 <= int(value) <= _INT32_MAX:
                raise ValueError(f"{name} must be in [0, 2**31 - 1], got {value}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")

        # Deferred so that `import envs` stays cheap; this also fails early if procgen is missing.
        from procgen import ProcgenGym3Env

        self._gym3_cls = ProcgenGym3Env
        self.game = game
        self.frame_size = int(frame_size)
        self.distribution_mode = distribution_mode
        self.timeout = PROCGEN_TIMEOUTS[game]
        self.render_mode = render_mode
        self._hires = self.frame_size != NATIVE_SIZE
        self._gym3_kwargs: dict[str, Any] = {
            "env_name": game,
            "distribution_mode": distribution_mode,
            "use_backgrounds": bool(use_backgrounds),
            "center_agent": bool(center_agent),
            "paint_vel_info": bool(paint_vel_info),
            "restrict_themes": bool(restrict_themes),
            "use_monochrome_assets": bool(use_monochrome_assets),
            # One env: worker threads only add hand-offs (and contend for shared cores).
            "num_threads": 0,
            # Only pay for the 512 px render when a non-native size is asked for.
            "render_mode": "rgb_array" if self._hires else None,
        }
        if distribution_mode != "exploration":  # exploration fixes its own single level
            self._gym3_kwargs |= {"num_levels": int(num_levels), "start_level": int(start_level)}

        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = spaces.Box(
            0, 255, (self.frame_size, self.frame_size, 3), dtype=np.uint8
        )

        self._env: Any = None
        self.rand_seed: int | None = None  # procgen's rand_seed of the live gym3 env, for logs
        self._frame: np.ndarray | None = None  # the observation last returned
        self._episode_step = 0
        self._done = False  # the last step ended an episode; reset() must come next
        self._next_frame: np.ndarray | None = None  # the next episode's first frame, once seen
        self._next_level_seed = 0

    # -- gym3 plumbing -------------------------------------------------------------------------

    def _make_gym3(self, rand_seed: int) -> None:
        self._close_gym3()
        self._env = self._gym3_cls(num=1, rand_seed=rand_seed, **self._gym3_kwargs)

    def _close_gym3(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def _observe(self) -> tuple[float, np.ndarray, bool, dict[str, Any]]:
        """Reward, frame (S, S, 3), first flag and procgen info after the last act."""
        rew, ob, first = self._env.observe()
        # gym3's get_info() calls libenv_observe again, which re-renders the 512 px frame; its
        # info buffers were filled by the observe() above, so read them directly when they exist.
        buffers = getattr(self._env, "_info", None)
        if buffers is None:
            info = self._env.get_info()[0]
        else:
            info = {key: value[0] for key, value in buffers.items()}
        frame = self._resize(info["rgb"]) if self._hires else ob["rgb"][0].copy()
        return float(rew[0]), frame, bool(first[0]), info

    def _resize(self, rgb512: np.ndarray) -> np.ndarray:
        if self.frame_size == RENDER_SIZE:
            return rgb512.copy()
        from PIL import Image

        # Area average (box filter): thin sprites do not alias. Pillow's integer-factor reduce is
        # the cheapest way found (faster than resize and numpy's mean: docs/research/env_speed.md).
        image = Image.fromarray(rgb512)
        factor, rest = divmod(RENDER_SIZE, self.frame_size)
        if rest == 0:
            image = image.reduce(factor)
        else:
            image = image.resize((self.frame_size, self.frame_size), Image.BOX)
        return np.asarray(image, dtype=np.uint8).copy()

    def _make_info(
        self, action: int, level_seed: int, level_complete: bool, frame_is_repeat: bool
    ) -> dict[str, Any]:
        executed = np.array([action], dtype=np.int64)
        return {
            "level_seed": level_seed,
            "prev_level_complete": level_complete,
            "action": executed,
            "executed_action": executed.copy(),
            "episode_step": self._episode_step,
            "frame_is_repeat": frame_is_repeat,
        }

    # -- Gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._env is None:
            # procgen's rand_seed must fit in int32; drawing it from the seeded generator maps
            # any Gymnasium seed (including ones >= 2**31) to a well-mixed valid value.
            self.rand_seed = int(self.np_random.integers(0, _INT32_MAX))
            self._make_gym3(self.rand_seed)
            _, frame, _, info = self._observe()
            level_seed = int(info["level_seed"])
        elif self._done:
            frame, level_seed = self._next_frame, self._next_level_seed
        else:
            # Abandon the running episode: action -1 makes procgen end it and load a new level.
            self._env.act(np.array([-1], dtype=np.int32))
            _, frame, first, info = self._observe()
            assert first, "procgen did not start a new episode on its force-reset action"
            level_seed = int(info["level_seed"])

        assert frame is not None
        self._frame = frame
        self._done = False
        self._next_frame = None
        self._episode_step = 0
        return frame.copy(), self._make_info(-1, level_seed, False, False)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._env is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError(
                "the episode has ended (terminated or truncated); call reset() before step()"
            )
        action = int(action)
        if not 0 <= action < NUM_ACTIONS:
            raise ValueError(f"action must be in [0, {NUM_ACTIONS}), got {action}")

        self._env.act(np.array([action], dtype=np.int32))
        reward, frame, first, info = self._observe()
        self._episode_step += 1

        if not first:
            self._frame = frame
            step_info = self._make_info(action, int(info["level_seed"]), False, False)
            return frame.copy(), reward, False, False, step_info

        # procgen has already reset: `frame` belongs to the next episode. Keep it for reset() and
        # close this episode on a copy of its own last frame; procgen's `prev_*` info describes
        # the episode that just ended.
        level_complete = bool(info["prev_level_complete"])
        truncated = not level_complete and self._episode_step >= self.timeout
        self._next_frame, self._next_level_seed = frame, int(info["level_seed"])
        self._done = True
        out_info = self._make_info(action, int(info["prev_level_seed"]), level_complete, True)
        assert self._frame is not None
        return self._frame.copy(), reward, not truncated, truncated, out_info

    def render(self) -> np.ndarray | None:
        """The current observation frame, uint8 (S, S, 3), when ``render_mode == "rgb_array"``."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        if self._frame is None:
            raise RuntimeError("call reset() before render()")
        return self._frame.copy()

    def close(self) -> None:
        self._close_gym3()
        self._frame = self._next_frame = None
        self._done = False
        super().close()


def register_procgen_envs() -> None:
    """Register ``Procgen-<Game>-v0`` for the 16 games (idempotent, imports nothing heavy).

    Keyword arguments of ``ProcgenEnv`` can be overridden through ``gym.make``, e.g.
    ``gym.make("Procgen-Coinrun-v0", frame_size=128, distribution_mode="hard")``. No
    ``max_episode_steps`` is set: procgen's own per-game timeouts end episodes (reported as
    ``truncated``).
    """
    for game in GAMES:
        if env_id(game) in gym.registry:
            continue
        gym.register(
            id=env_id(game),
            entry_point="envs.procgen:ProcgenEnv",
            kwargs={"game": game},
            max_episode_steps=None,
        )


def bench_procgen(game: str, frame_size: int = NATIVE_SIZE, seconds: float = 2.0) -> float:
    """Steps per second of ``ProcgenEnv(game, frame_size=...)`` under uniform random actions.

    Runs for about ``seconds`` of wall time on one thread, resets included (the first reset,
    which may load procgen's assets, is not timed).
    """
    env = ProcgenEnv(game, frame_size=frame_size)
    try:
        env.reset(seed=0)
        actions = np.random.default_rng(0).integers(0, NUM_ACTIONS, size=64).tolist()
        steps = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            # Check the clock once per 64 steps so that timing does not dominate a fast env step.
            for action in actions:
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
            steps += len(actions)
            now = time.perf_counter()
            if now >= deadline:
                return steps / (now - start)
    finally:
        env.close()
