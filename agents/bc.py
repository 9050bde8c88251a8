"""Behaviour cloning from (frame, joint action) pairs (FLAM eq. 6), on an SB3 policy.

The policy is a stable-baselines3 :class:`ActorCriticPolicy` over the env's
``MultiDiscrete([5] * N)`` action space, with a small CNN features extractor
(:class:`CoordCNN`): SB3's NatureCNN (8x8 stride-4 first layer) would reduce a 32x32 frame to
nearly nothing. It sees channel-first frames, uint8 ``(3, H, W)`` (SB3 scales them to [0, 1]);
:func:`channel_first` wraps an env to give them. Training maximises the log-likelihood of the
demonstrated joint actions, ``policy.evaluate_actions(obs, actions)`` (the sum over agents of
each agent's categorical log-probability), plus an optional entropy bonus. Eq. 6 writes a squared
error because its actions are continuous; for discrete actions the likelihood is its analogue.

Because it is an SB3 policy, ``stable_baselines3.common.evaluation.evaluate_policy`` evaluates
it (``agent.policy`` has ``predict``) and :func:`finetune_ppo` continues with SB3's PPO from the
cloned weights (LAPO's stage 3).

Shapes: frames uint8 ``(F, H, W, 3)`` in datasets and envs, ``(b, 3, H, W)`` in the policy;
joint actions int64 ``(F, a)`` with -1 where there is no action (an episode's last frame).

Augmentation (``augment="dihedral"``): the room, the agents (disks) and the goals (squares) look
the same under the 8 symmetries of the square, and the absolute moves permute with them (a
left-right flip swaps LEFT and RIGHT; a transpose swaps UP with LEFT and DOWN with RIGHT), so
each symmetry turns a demonstration into another valid one.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from einops import rearrange, repeat
from gymnasium.wrappers import TransformObservation
from safetensors.torch import load_model, save_model
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from tqdm.auto import tqdm

from agents.agent_queries import AgentQueryCNN
from agents.cells import check_patch, coordinate_planes
from agents.evaluate import EnvSpec, make_env
from latentrl.config import from_dict, opt
from latentrl.runs import write_json

NUM_ACTIONS = 5
"""MultiGrid's STAY/UP/DOWN/LEFT/RIGHT."""
Acting = Literal["argmax", "sample", "escape"]
# Action permutations of the generating symmetries (index: old action -> new action).
_FLIP_X = torch.tensor([0, 1, 2, 4, 3])  # x -> W-1-x swaps LEFT and RIGHT
_FLIP_Y = torch.tensor([0, 2, 1, 3, 4])  # y -> H-1-y swaps UP and DOWN
_TRANSPOSE = torch.tensor([0, 3, 4, 1, 2])  # (x, y) -> (y, x): UP<->LEFT, DOWN<->RIGHT


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning: policy architecture and training."""

    steps: int = opt(4000, "optimisation steps (one batch each)")
    batch_size: int = opt(128, "(frame, joint action) pairs per step")
    lr: float = opt(1e-3, "Adam learning rate (cosine-decayed to 5% over the steps)")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    ent_coef: float = opt(0.0, "entropy bonus weight (0: plain maximum likelihood)")
    patch: int = opt(
        4, "kernel and stride of the first conv: the env's tile size gives one feature per cell"
    )
    channels: tuple[int, ...] = opt(
        (32, 32), "CNN channels: the patch conv's, then one 3x3 conv per further entry"
    )
    coord_conv: bool = opt(
        True, "append x/y coordinate planes to the frame (CoordConv): the task is positions"
    )
    extractor: Literal["frame", "agents"] = opt(
        "frame",
        "frame: one CNN summary of the frame for every agent's head (CoordCNN); agents: one "
        "learned query per agent attending over the cell features (agents.agent_queries; "
        "coordinates always on), so each agent's vector holds its own surroundings",
    )
    features_dim: int = opt(256, "frame extractor: width of the CNN features (SB3 features_dim)")
    agent_width: int = opt(64, "agents extractor: width of each cell feature and agent vector")
    net_arch: tuple[int, ...] = opt((256,), "hidden layers of the policy and value heads")
    augment: Literal["none", "dihedral"] = opt(
        "dihedral", "random symmetries of the square with the matching action permutation"
    )
    acting: Acting = opt(
        "escape",
        "argmax: each agent's most likely action; sample: draw from the policy (seeded per "
        "episode); escape: argmax, but sample whenever the frame repeats one already seen in the "
        "episode (argmax in a deterministic env would then loop forever)",
    )
    escape_temperature: float = opt(
        3.0,
        "escape: softmax temperature of the draw on a repeated frame (> 1 flattens the policy, "
        "so a blocked agent tries the detours it ranks low; docs/research/bc_acting.md)",
    )
    seed: int = opt(0, "seed of the initial weights and the batch order")

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"steps and batch size must be >= 1, got {self.steps}, {self.batch_size}"
            )
        if not self.channels:
            raise ValueError("the CNN needs at least one conv layer (--channels)")
        if self.escape_temperature <= 0:
            raise ValueError(f"escape temperature must be > 0, got {self.escape_temperature}")


# -- env and policy ---------------------------------------------------------------------------------
def _to_channel_first(obs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rearrange(obs, "h w c -> c h w"))


def channel_first(env: gym.Env[np.ndarray, Any]) -> gym.Env[np.ndarray, Any]:
    """``env`` with uint8 ``(3, H, W)`` observations, as SB3 image policies take them."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        raise TypeError(f"expected an image observation space (H, W, C), got {space}")
    h, w, c = space.shape
    new_space = gym.spaces.Box(0, 255, (c, h, w), dtype=np.uint8)
    return TransformObservation(env, _to_channel_first, new_space)


class CoordCNN(BaseFeaturesExtractor):
    """A small CNN for small frames: optional x/y coordinate planes (CoordConv), a
    ``patch x patch`` conv at stride ``patch`` (with the env's tile size, one feature vector per
    cell: the grid is the natural resolution and it costs 16x less than pixels), 3x3 convs at that
    resolution, a linear layer to ``features_dim``.

    Input: float ``(b, c, H, W)`` in [0, 1] (SB3's preprocessing); output ``(b, features_dim)``.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        features_dim: int = 256,
        channels: tuple[int, ...] = (32, 32),
        patch: int = 4,
        coord_conv: bool = True,
    ) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        check_patch(h, w, patch)
        self.coord_conv = coord_conv
        if coord_conv:
            self.register_buffer("coords", coordinate_planes(h, w), persistent=False)
        in_channels = c + (2 if coord_conv else 0)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], patch, stride=patch)]
        for prev, ch in itertools.pairwise(channels):
            layers += [nn.ReLU(), nn.Conv2d(prev, ch, 3, padding=1)]
        self.cnn = nn.Sequential(*layers, nn.ReLU(), nn.Flatten())
        flat = channels[-1] * (h // patch) * (w // patch)
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations
        if self.coord_conv:
            x = torch.cat([x, repeat(self.coords, "two h w -> b two h w", b=x.shape[0])], dim=1)
        return self.linear(self.cnn(x))


def policy_kwargs(cfg: BCConfig, num_agents: int) -> dict[str, Any]:
    """``ActorCriticPolicy`` keyword arguments of a config (also PPO's ``policy_kwargs``).

    With the ``agents`` extractor the policy head has no hidden layer (``net_arch`` applies to
    the value head only): a linear map from the agents' vectors to their logits."""
    if cfg.extractor == "agents":
        return {
            "net_arch": {"pi": [], "vf": list(cfg.net_arch)},
            "activation_fn": nn.ReLU,
            "features_extractor_class": AgentQueryCNN,
            "features_extractor_kwargs": {
                "num_agents": num_agents,
                "channels": tuple(cfg.channels),
                "patch": cfg.patch,
                "width": cfg.agent_width,
            },
            "normalize_images": True,
        }
    return {
        "net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)},
        "activation_fn": nn.ReLU,
        "features_extractor_class": CoordCNN,
        "features_extractor_kwargs": {
            "features_dim": cfg.features_dim,
            "channels": tuple(cfg.channels),
            "patch": cfg.patch,
            "coord_conv": cfg.coord_conv,
        },
        "normalize_images": True,
    }


def spaces_for(
    frame_shape: tuple[int, int, int], num_agents: int, num_actions: int = NUM_ACTIONS
) -> tuple[gym.spaces.Box, gym.spaces.MultiDiscrete]:
    """Channel-first observation space and joint action space for ``(H, W, C)`` frames."""
    h, w, c = frame_shape
    return (
        gym.spaces.Box(0, 255, (c, h, w), dtype=np.uint8),
        gym.spaces.MultiDiscrete([num_actions] * num_agents),
    )


def build_policy(
    frame_shape: tuple[int, int, int],
    num_agents: int,
    cfg: BCConfig,
    num_actions: int = NUM_ACTIONS,
) -> ActorCriticPolicy:
    """A fresh SB3 policy for ``(H, W, C)`` frames and ``num_agents`` agents (seeded)."""
    obs_space, act_space = spaces_for(frame_shape, num_agents, num_actions)
    torch.manual_seed(cfg.seed)
    return ActorCriticPolicy(
        obs_space, act_space, lambda _: cfg.lr, **policy_kwargs(cfg, num_agents)
    )


# -- the agent ------------------------------------------------------------------------------------
class BCPolicyAgent:
    """An :class:`agents.base.Agent` acting with an SB3 policy on raw ``(H, W, 3)`` frames.

    Args:
        policy: SB3 ``ActorCriticPolicy`` over channel-first frames and ``MultiDiscrete``.
        config: the BC config it was built with (architecture, ``acting``).
        stats: figures of its training (loss, accuracy, seconds), kept for reports.
    """

    def __init__(
        self, policy: ActorCriticPolicy, config: BCConfig, stats: dict[str, float] | None = None
    ) -> None:
        self.policy = policy.eval()
        self.config = config
        self.stats = dict(stats or {})
        c, h, w = policy.observation_space.shape  # type: ignore[misc]
        self.frame_shape: tuple[int, int, int] = (h, w, c)
        nvec = policy.action_space.nvec  # type: ignore[attr-defined]
        self.num_agents, self.num_actions = len(nvec), int(nvec[0])
        self.acting: Acting = config.acting
        self._gen = torch.Generator().manual_seed(config.seed)
        self._seen: set[bytes] = set()

    def reset(self, seed: int | None = None) -> None:
        self._gen = torch.Generator().manual_seed(self.config.seed if seed is None else seed)
        self._seen = set()

    @torch.no_grad()
    def logits(self, frames: np.ndarray) -> torch.Tensor:
        """Frames uint8 ``(b, H, W, 3)`` -> per-agent logits ``(b, a, v)``."""
        if frames.shape[1:] != self.frame_shape:
            raise ValueError(
                f"this policy was trained on {self.frame_shape} frames, got {frames.shape[1:]}: "
                "evaluate it on the env it was trained for (same size and tile size)"
            )
        obs = torch.from_numpy(np.ascontiguousarray(rearrange(frames, "b h w c -> b c h w")))
        dist = self.policy.get_distribution(obs.to(self.policy.device))
        logits = torch.stack([d.logits for d in dist.distribution], dim=1)  # type: ignore[union-attr]
        return logits.cpu()

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        del info  # a policy from video sees the frame only
        logits = self.logits(obs[None])[0]
        sample = self.acting == "sample"
        if self.acting == "escape":
            # The env and argmax are deterministic: a frame seen before means a loop (agents
            # blocking each other), which only a random move can leave.
            key = obs.tobytes()
            sample = key in self._seen
            self._seen.add(key)
        if sample:
            temperature = self.config.escape_temperature if self.acting == "escape" else 1.0
            probs = (logits / temperature).softmax(-1)
            action = torch.multinomial(probs, 1, generator=self._gen)[:, 0]
        else:
            action = logits.argmax(-1)
        return action.numpy().astype(np.int64)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """``config.json`` (BC config, frame shape, agents) and ``policy.safetensors``, atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": dataclasses.asdict(self.config),
            "frame_shape": list(self.frame_shape),
            "num_agents": self.num_agents,
            "num_actions": self.num_actions,
            "stats": self.stats,
        }
        write_json(folder / "config.json", meta)
        # SB3 shares one features extractor between its actor and critic attributes:
        # safetensors' save_model stores that tensor once (save_file would refuse).
        path = folder / "policy.safetensors"
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        save_model(self.policy, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, folder: Path, device: str | torch.device = "cpu") -> BCPolicyAgent:
        """Rebuild a saved agent (never unpickles)."""
        folder = Path(folder)
        path = folder / "config.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no BC policy config at {path}: is {folder} a folder written by "
                "BCPolicyAgent.save (train one with agents.bc.train_bc)?"
            )
        meta = json.loads(path.read_text())
        cfg = from_dict(BCConfig, meta["config"])
        policy = build_policy(
            tuple(meta["frame_shape"]), meta["num_agents"], cfg, meta["num_actions"]
        ).to(device)
        weights = folder / "policy.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(
                f"no weights at {weights}: the policy folder is incomplete; save it again"
            )
        load_model(policy, str(weights), strict=True, device=str(device))
        return cls(policy, cfg, meta.get("stats"))

    def check_env(self, env: gym.Env[Any, Any]) -> None:
        """Raise if ``env``'s frames or agent count differ from what the policy was trained on."""
        space, act = env.observation_space, env.action_space
        if space.shape != self.frame_shape or not isinstance(act, gym.spaces.MultiDiscrete):
            raise ValueError(
                f"this policy was trained on {self.frame_shape} frames; the env gives "
                f"{space.shape}: use the env it was trained for (same size and tile size)"
            )
        if len(act.nvec) != self.num_agents:
            raise ValueError(
                f"this policy was trained for {self.num_agents} agent(s); the env has "
                f"{len(act.nvec)}: train it on data of this agent count"
            )


# -- data and training ----------------------------------------------------------------------------
def demonstration_pairs(frames: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the frames with an action for every agent: ``(F', H, W, 3)``, ``(F', a)``."""
    frames, actions = np.asarray(frames), np.asarray(actions)
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f"expected uint8 frames (F, H, W, 3), got {frames.dtype} {frames.shape}")
    if actions.ndim != 2 or len(actions) != len(frames):
        raise ValueError(
            f"expected actions (F, a) for {len(frames)} frames, got shape {actions.shape}"
        )
    keep = (actions >= 0).all(axis=1)
    return frames[keep], actions[keep].astype(np.int64)


def bc_dataset_from_cache(
    cache: Any, actions: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(frame, action) pairs of a :class:`latentrl.data.cache.FrameCache`.

    Args:
        cache: the frame cache (expert video).
        actions: int ``(F, a)`` labels to use instead of the cache's own (e.g. decoded from latent
            actions by :func:`latentrl.decoder.label_actions`, -1 on each episode's last frame).
    """
    labels = cache.actions if actions is None else actions
    if labels is None:
        raise ValueError(
            "the cache has no actions: pass decoded actions (latentrl.decoder.label_actions) "
            "or load the cache with labels=True"
        )
    return demonstration_pairs(cache.frames, labels)


def dihedral(
    frames: torch.Tensor, actions: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random symmetry of the square per sample, frames ``(b, c, h, w)`` (square) with their
    joint actions ``(b, a)`` permuted to match (new tensors)."""
    b = frames.shape[0]
    out, acts = frames, actions
    for perm, flip in (
        (_TRANSPOSE, lambda x: x.transpose(-1, -2)),
        (_FLIP_X, lambda x: x.flip(-1)),
        (_FLIP_Y, lambda x: x.flip(-2)),
    ):
        pick = torch.rand(b, generator=generator) < 0.5
        out = torch.where(pick[:, None, None, None], flip(out), out)
        acts = torch.where(pick[:, None], perm[acts], acts)
    return out, acts


def train_bc(
    frames: np.ndarray,
    actions: np.ndarray,
    cfg: BCConfig,
    *,
    num_actions: int = NUM_ACTIONS,
    progress: bool = True,
) -> BCPolicyAgent:
    """Clone the joint actions demonstrated in ``frames``.

    Args:
        frames: uint8 ``(F, H, W, 3)`` frames.
        actions: int ``(F, a)`` the joint action taken from each frame; rows with a -1 (an
            episode's last frame) are dropped.
        cfg: architecture and training settings.
        num_actions: actions per agent.
        progress: show a tqdm bar with the loss and batch accuracy.

    Returns:
        The agent (eval mode); ``agent.stats`` holds the final loss, batch accuracy and seconds.
    """
    frames, actions = demonstration_pairs(frames, actions)
    if len(frames) == 0:
        raise ValueError("no (frame, action) pair with every agent's action to clone")
    if actions.max() >= num_actions:
        raise ValueError(f"action {int(actions.max())} outside [0, {num_actions})")
    h, w, c = frames.shape[1:]
    if cfg.augment == "dihedral" and h != w:
        raise ValueError(f"dihedral augmentation needs square frames, got {h}x{w}")
    start = time.perf_counter()
    policy = build_policy((h, w, c), actions.shape[1], cfg, num_actions)
    policy.train()
    obs_all = torch.from_numpy(np.ascontiguousarray(rearrange(frames, "f h w c -> f c h w")))
    act_all = torch.from_numpy(actions)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    accs: list[float] = []
    bar = tqdm(range(cfg.steps), desc="bc", disable=not progress)
    for step in bar:
        idx = torch.randint(len(obs_all), (cfg.batch_size,), generator=gen)
        obs, act = obs_all[idx], act_all[idx]
        if cfg.augment == "dihedral":
            obs, act = dihedral(obs, act, gen)
        obs, act = obs.to(policy.device), act.to(policy.device)
        _, log_prob, entropy = policy.evaluate_actions(obs, act)
        loss = -log_prob.mean()
        if cfg.ent_coef and entropy is not None:
            loss = loss - cfg.ent_coef * entropy.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == cfg.steps - 1:
            with torch.no_grad():
                mode = policy.get_distribution(obs).mode()
            accs.append((mode == act).float().mean().item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", acc=f"{accs[-1]:.3f}")
    stats = {
        "final_loss": float(np.mean(losses[-50:])),
        "batch_accuracy": float(np.mean(accs[-5:])),
        "train_seconds": time.perf_counter() - start,
        "pairs": len(frames),
    }
    return BCPolicyAgent(policy, cfg, stats)


# -- online fine-tuning -----------------------------------------------------------------------------
def finetune_ppo(
    agent: BCPolicyAgent,
    env: EnvSpec,
    steps: int,
    *,
    env_kwargs: dict[str, Any] | None = None,
    n_envs: int = 8,
    seed: int = 0,
    ppo_kwargs: dict[str, Any] | None = None,
    progress: bool = False,
) -> BCPolicyAgent:
    """Continue training ``agent``'s policy with SB3 PPO in ``env`` for ``steps`` env steps.

    PPO is built with the same policy architecture, then its policy takes the cloned weights, so
    fine-tuning starts from the BC policy (LAPO's stage 3). The value head starts untrained.

    Args:
        agent: the BC agent (not modified; its weights are copied).
        env: env id (with ``env_kwargs``) or factory of the task.
        steps: total env steps of PPO.
        n_envs: parallel envs (in-process ``DummyVecEnv``).
        seed: PPO's and the envs' seed.
        ppo_kwargs: overrides of PPO's arguments (defaults: lr 1e-4, n_steps 128, batch 256,
            4 epochs, ent_coef 0.01).
        progress: SB3's progress bar.

    Returns:
        A new agent with the fine-tuned policy.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    probe = make_env(env, env_kwargs)
    try:
        agent.check_env(probe)
    finally:
        probe.close()
    vec = make_vec_env(
        (lambda: make_env(env, env_kwargs)) if not isinstance(env, str) else env,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=env_kwargs if isinstance(env, str) else None,
        wrapper_class=channel_first,
    )
    kwargs: dict[str, Any] = {
        "learning_rate": 1e-4,
        "n_steps": 128,
        "batch_size": 256,
        "n_epochs": 4,
        "ent_coef": 0.01,
        **(ppo_kwargs or {}),
    }
    ppo = PPO(
        ActorCriticPolicy,
        vec,
        policy_kwargs=policy_kwargs(agent.config, agent.num_agents),
        seed=seed,
        device=agent.policy.device,
        verbose=0,
        **kwargs,
    )
    ppo.policy.load_state_dict(agent.policy.state_dict())
    ppo.learn(total_timesteps=steps, progress_bar=progress)
    vec.close()
    stats = {**agent.stats, "ppo_steps": float(steps)}
    return BCPolicyAgent(ppo.policy, agent.config, stats)
