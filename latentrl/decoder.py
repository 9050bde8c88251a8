"""The latent-action decoder f (FLAM sec. 4.3): latent actions -> real per-agent actions.

A latent action model explains every transition ``t -> t+1`` with latent actions; ``f`` maps
them to the env's real actions and is trained by supervised learning on a small labelled subset
of transitions. It then labels expert videos for behaviour cloning (eq. 6).

What ``f`` sees: the states at time ``t`` and the latent action of ``t -> t+1``, never frame
``t+1``; so the move itself can only come from the latent action. The states are there to tell
*which* slot is which agent (colour, position), not what it does.

- FLAM (``k' == k``): one unit per slot, ``MLP(concat(state_k, action_k))``; with positional
  slots the state's last two channels are the slot's centroid.
- LAM / OC+LAM (``k' == 1``): one unit per token or slot, each concatenated with the broadcast
  scene action.
- ``a`` learned agent queries cross-attend over the units and each gives that agent's logits.

Labelled source (default): the world model's own training data, i.e. random-play video. A
decoder trained on expert frames could learn the expert's policy from state ``t`` alone (where
the agent stands relative to its goal predicts the move) instead of reading the latent action,
and would then "decode" a plausible expert action whatever the latent action says. On random
play the state says nothing about the action, so only the latent action can.

Shapes (axis letters as in :mod:`latentrl.types`): codes ``(b, t, n)``; states
``(b, t - 1, k, d_s)``; latent actions ``(b, t - 1, k', d_a)``; logits ``(b, a, v)`` with ``v``
real actions per agent; labels int64 ``(..., a)`` with -1 where unknown.

Windows: each transition is encoded inside a window of ``window`` frames of its own episode that
ends with it (the model's slots at ``t`` then carry ``window - 2`` frames of recursion); near an
episode's start the window begins at the first frame instead. Training and labelling use the same
rule (:func:`window_start`), so ``f`` sees the same kind of state in both.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from tqdm.auto import tqdm

from latentrl.checkpoint import load_weights, save_weights
from latentrl.config import from_dict, opt
from latentrl.data.codes import CodeCache
from latentrl.models.base import LatentActionModel
from latentrl.nn.blocks import CrossBlock
from latentrl.runs import write_json

NO_LABEL_ERROR = (
    "label fraction 0 leaves nothing to train the decoder on; pass --label-fraction > 0 or "
    "--label-count N"
)


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Latent-action decoder f: architecture, labelled subset and training."""

    label_fraction: float = opt(
        0.02, "fraction of the labelled source's transitions whose true actions are known"
    )
    label_count: int = opt(
        0,
        "absolute number of labelled transitions (e.g. 1000 or 10000 as the arXiv version's "
        "1k/10k frames); overrides --label-fraction when > 0",
    )
    eval_count: int = opt(
        2000, "held-out labelled transitions on which the decoder's accuracy is measured"
    )
    steps: int = opt(600, "optimisation steps")
    batch_size: int = opt(256, "transitions per step")
    lr: float = opt(1e-3, "Adam learning rate")
    weight_decay: float = opt(1e-4, "AdamW weight decay (small labelled sets overfit)")
    d_model: int = opt(64, "decoder width")
    heads: int = opt(4, "attention heads of the agent queries")
    blocks: int = opt(2, "cross-attention blocks (agent queries over slot/token units)")
    seed: int = opt(0, "seed of the labelled subset, the held-out subset and the initial weights")

    def __post_init__(self) -> None:
        if self.label_count <= 0 and self.label_fraction <= 0:
            raise ValueError(NO_LABEL_ERROR)
        if self.label_count <= 0 and self.label_fraction > 1:
            raise ValueError(
                f"label fraction must lie in (0, 1], got {self.label_fraction}; "
                "use --label-count N for an absolute number of labelled transitions"
            )
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"steps and batch size must be >= 1, got {self.steps} and {self.batch_size}"
            )

    def labelled_count(self, transitions: int) -> int:
        """How many of ``transitions`` are labelled: ``label_count``, else the fraction (>= 1)."""
        if self.label_count > 0:
            return self.label_count
        return max(1, round(self.label_fraction * transitions))


@dataclasses.dataclass(frozen=True)
class DecoderReport:
    """Held-out accuracy of a trained decoder (chance: the majority action's share)."""

    per_agent_accuracy: tuple[float, ...]
    accuracy: float
    joint_accuracy: float
    labelled_transitions: int
    chance: float
    eval_transitions: int = 0
    final_loss: float = math.nan
    train_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures (tuples become lists)."""
        return dataclasses.asdict(self)


class ActionDecoder(nn.Module):
    """``f(states_t, latent_actions) -> per-agent logits`` (see the module docstring).

    Args:
        config: width, heads, blocks (the rest of :class:`DecoderConfig` is for training).
        state_dim: ``d_s``, the width of one slot/token state.
        action_dim: ``d_a``, the width of one latent action.
        num_agents: ``a``.
        num_actions: real actions per agent ``v``.
        window: frames per encoding window (kept so that labelling uses the training rule).
    """

    def __init__(
        self,
        config: DecoderConfig,
        state_dim: int,
        action_dim: int,
        num_agents: int,
        num_actions: int,
        window: int = 2,
    ) -> None:
        super().__init__()
        if window < 2:
            raise ValueError(f"a transition needs a window of >= 2 frames, got {window}")
        self.config = config
        self.state_dim, self.action_dim = state_dim, action_dim
        self.num_agents, self.num_actions, self.window = num_agents, num_actions, window
        d = config.d_model
        # Fixed per-channel standardisation, set from the labelled inputs: slot features,
        # centroids (in tokens) and FSQ values live on very different scales.
        self.register_buffer("in_mean", torch.zeros(state_dim + action_dim))
        self.register_buffer("in_std", torch.ones(state_dim + action_dim))
        self.unit = nn.Sequential(
            nn.Linear(state_dim + action_dim, d), nn.GELU(), nn.Linear(d, d), nn.GELU()
        )
        self.unit_out = nn.Linear(d, d)
        self.queries = nn.Parameter(torch.randn(num_agents, d) * 0.02)
        self.blocks = nn.ModuleList(CrossBlock(d, config.heads) for _ in range(config.blocks))
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, num_actions))

    def _units(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        k, k_act = states.shape[-2], actions.shape[-2]
        if states.shape[-1] != self.state_dim or actions.shape[-1] != self.action_dim:
            raise ValueError(
                f"this decoder was trained for states of width {self.state_dim} and latent "
                f"actions of width {self.action_dim}, got {states.shape[-1]} and "
                f"{actions.shape[-1]}: train a decoder for this latent action model"
            )
        if k_act == 1 and k != 1:
            actions = repeat(actions, "b 1 d -> b k d", k=k)
        elif k_act != k:
            raise ValueError(
                f"{k_act} latent actions for {k} states: expected one per slot (FLAM) or one "
                "per scene (LAM, OC+LAM)"
            )
        x = torch.cat([states, actions], dim=-1)
        x = (x - self.in_mean) / self.in_std
        return self.unit_out(self.unit(x))

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """States ``(b, k, d_s)`` at ``t``, latent actions ``(b, k', d_a)`` -> ``(b, a, v)``."""
        units = self._units(states, actions)
        q = repeat(self.queries, "a d -> b a d", b=units.shape[0])
        for block in self.blocks:
            q = block(q, units)
        return self.head(q)

    @torch.no_grad()
    def set_normalisation(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        """Standardise inputs with the per-channel mean/std of ``(B, k, d_s)``, ``(B, k', d_a)``."""
        k = states.shape[1]
        acts = actions if actions.shape[1] == k else repeat(actions, "b 1 d -> b k d", k=k)
        x = rearrange(torch.cat([states, acts], dim=-1), "b k d -> (b k) d")
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp_min(1e-3))

    # -- persistence ----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "num_agents": self.num_agents,
            "num_actions": self.num_actions,
            "window": self.window,
        }

    def save(self, folder: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (each atomically) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "config.json", self.meta())
        save_weights(self, folder / "model.safetensors")

    @classmethod
    def load(cls, folder: Path, device: str | torch.device = "cpu") -> ActionDecoder:
        """Rebuild a saved decoder; never unpickles."""
        folder = Path(folder)
        path = folder / "config.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no decoder config at {path}: is {folder} a folder written by "
                "ActionDecoder.save (train one with latentrl.decoder.train_decoder)?"
            )
        meta = json.loads(path.read_text())
        cfg = from_dict(DecoderConfig, meta.pop("config"))
        decoder = cls(cfg, **meta).to(device)
        load_weights(decoder, folder / "model.safetensors")
        return decoder.eval()

    def check_model(self, model: LatentActionModel, num_agents: int | None = None) -> None:
        """Raise if ``model`` (or the data's agent count) is not what this decoder was built for."""
        cfg = model.config
        state_dim = cfg.d_model + (2 if cfg.positional else 0)
        if (state_dim, cfg.bottleneck.action_dim) != (self.state_dim, self.action_dim):
            raise ValueError(
                f"decoder built for states {self.state_dim} wide and latent actions "
                f"{self.action_dim} wide, but the {cfg.model} model gives {state_dim} and "
                f"{cfg.bottleneck.action_dim}: train a decoder for this model"
            )
        if num_agents is not None and num_agents != self.num_agents:
            raise ValueError(
                f"decoder trained for {self.num_agents} agents, the data has {num_agents}: "
                "train a decoder on data of this agent count"
            )


# -- inputs ---------------------------------------------------------------------------------------
def window_start(local: np.ndarray, length: np.ndarray, window: int) -> np.ndarray:
    """First frame (episode-relative) of the window that encodes transition ``local -> local+1``
    in an episode of ``length`` frames (arrays of equal shape).

    The window has ``min(window, length)`` frames and ends with the transition, or is the
    episode's first window when there are too few earlier frames.
    """
    span = np.minimum(window, length)
    return np.clip(local - (span - 2), 0, length - span)


@torch.no_grad()
def decoder_inputs(
    model: LatentActionModel, codes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes ``(b, t, n)`` -> states ``(b, t - 1, k, d_s)`` at each ``t`` and latent actions
    ``(b, t - 1, k', d_a)`` of each transition (model in eval mode, no gradients)."""
    if model.config.conditioned_on_true_actions:
        raise ValueError(
            "the WM baseline is conditioned on true actions and has no latent actions to decode"
        )
    was_training = model.training
    model.eval()
    encoded = model.encode_states(codes)
    latent = model.infer(encoded.states, None)
    model.train(was_training)
    return encoded.states[:, :-1], latent.actions


@torch.no_grad()
def transition_inputs(
    model: LatentActionModel,
    codes: np.ndarray,
    episode_starts: np.ndarray,
    transitions: np.ndarray,
    window: int,
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs of chosen transitions of a code cache.

    Args:
        model: the latent action model.
        codes: int ``(F, n)`` code indices of back-to-back episodes.
        episode_starts: int64 ``(E + 1,)`` episode offsets.
        transitions: int ``(B,)`` cache frames ``f`` of the transitions ``f -> f+1`` (each
            inside an episode).
        window: frames per encoding window (see :func:`window_start`).
        chunk: windows encoded per forward pass.

    Returns:
        states ``(B, k, d_s)`` and latent actions ``(B, k', d_a)`` on the model's device.
    """
    device = next(model.parameters()).device
    transitions = np.asarray(transitions, np.int64)
    episode = np.searchsorted(episode_starts, transitions, side="right") - 1
    first = episode_starts[episode]
    length = episode_starts[episode + 1] - first
    local = transitions - first
    if np.any(local >= length - 1):
        raise ValueError("a transition starts on an episode's last frame (no next frame)")
    span = np.minimum(window, length)
    start = first + window_start(local, length, window)
    offset = transitions - start
    states: torch.Tensor | None = None
    actions: torch.Tensor | None = None
    # Episodes shorter than the window give shorter windows: encode each length separately.
    for s in np.unique(span):
        rows = np.flatnonzero(span == s)
        for lo in range(0, len(rows), chunk):
            part = rows[lo : lo + chunk]
            idx = start[part][:, None] + np.arange(s)
            st, act = decoder_inputs(
                model, torch.from_numpy(codes[idx].astype(np.int64)).to(device)
            )
            if states is None or actions is None:
                states = st.new_empty((len(transitions), *st.shape[2:]))
                actions = act.new_empty((len(transitions), *act.shape[2:]))
            rows_t = torch.from_numpy(part).to(device)
            ar = torch.arange(len(part), device=device)
            pick = torch.from_numpy(offset[part]).to(device)
            states[rows_t] = st[ar, pick]
            actions[rows_t] = act[ar, pick]
    if states is None or actions is None:
        raise ValueError("no transitions given")
    return states, actions


def labelled_transitions(cache: CodeCache) -> np.ndarray:
    """Cache frames ``f`` whose transition ``f -> f+1`` has every agent's action: ``(B,)``."""
    if cache.actions is None:
        raise ValueError(
            "the code cache has no actions: the decoder needs a labelled source (encode a "
            "dataset loaded with labels)"
        )
    return np.flatnonzero((cache.actions >= 0).all(axis=1))


# -- training ---------------------------------------------------------------------------------------
def _accuracy(
    decoder: ActionDecoder,
    states: torch.Tensor,
    actions: torch.Tensor,
    labels: torch.Tensor,
    batch: int = 1024,
) -> tuple[tuple[float, ...], float, float]:
    """Per-agent accuracy, joint accuracy and chance (majority share) on labelled inputs."""
    was_training = decoder.training
    decoder.eval()
    with torch.no_grad():
        pred = torch.cat(
            [
                decoder(states[i : i + batch], actions[i : i + batch]).argmax(-1)
                for i in range(0, len(states), batch)
            ]
        )
    decoder.train(was_training)
    right = pred == labels
    per_agent = tuple(right.float().mean(0).tolist())
    chance = float(
        np.mean(
            [
                torch.bincount(labels[:, j], minlength=decoder.num_actions).max().item()
                / len(labels)
                for j in range(labels.shape[1])
            ]
        )
    )
    return per_agent, right.all(-1).float().mean().item(), chance


def fit_decoder(
    decoder: ActionDecoder,
    states: torch.Tensor,
    actions: torch.Tensor,
    labels: torch.Tensor,
    cfg: DecoderConfig,
    *,
    progress: bool = True,
) -> float:
    """Supervised training of ``decoder`` on precomputed inputs; returns the final loss.

    Args:
        decoder: the decoder to train (its input normalisation is set from ``states``).
        states: ``(B, k, d_s)`` states at ``t``.
        actions: ``(B, k', d_a)`` latent actions of ``t -> t+1``.
        labels: int64 ``(B, a)`` true actions (-1 = unknown, ignored).
        cfg: steps, batch size, learning rate, seed.
        progress: show a tqdm bar.
    """
    if len(states) == 0:
        raise ValueError(NO_LABEL_ERROR)
    decoder.set_normalisation(states, actions)
    decoder.train()
    opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="decoder", disable=not progress)
    for step in bar:
        pick = torch.randint(len(states), (min(cfg.batch_size, len(states)),), generator=gen)
        pick = pick.to(states.device)
        logits = decoder(states[pick], actions[pick])
        loss = F.cross_entropy(
            rearrange(logits, "b a v -> (b a) v"),
            rearrange(labels[pick], "b a -> (b a)"),
            ignore_index=-1,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    decoder.eval()
    return float(np.mean(losses[-50:]))


@dataclasses.dataclass(frozen=True)
class LabelledSplit:
    """The labelled subset and the held-out transitions (cache frames ``f`` of ``f -> f+1``):
    ``train`` from the labelled source, ``held`` from ``eval_source``; ``count`` labelled."""

    train: np.ndarray
    held: np.ndarray
    count: int
    eval_source: CodeCache


def labelled_split(
    model: LatentActionModel,
    cache: CodeCache,
    cfg: DecoderConfig,
    eval_cache: CodeCache | None = None,
) -> LabelledSplit:
    """The seeded labelled subset of ``cache`` and the held-out transitions the decoder (and the
    controller, :mod:`latentrl.controller`, trained on the same subset) are measured on."""
    candidates = labelled_transitions(cache)
    assert cache.actions is not None
    num_agents = cache.actions.shape[1]
    num_actions = model.config.agent_actions
    if cache.actions.max() >= num_actions:
        raise ValueError(
            f"the cache has action {int(cache.actions.max())} but the model's config says "
            f"{num_actions} actions per agent (agent_actions)"
        )
    count = cfg.labelled_count(cache.num_frames - (len(cache.episode_starts) - 1))
    if count > len(candidates):
        if cfg.label_count > 0:
            raise ValueError(
                f"--label-count {cfg.label_count} exceeds the {len(candidates)} labelled "
                "transitions of the source: lower it or use a larger dataset"
            )
        count = len(candidates)
    order = np.random.default_rng(cfg.seed).permutation(len(candidates))
    train_idx = np.sort(candidates[order[:count]])
    if eval_cache is None:
        held = candidates[order[count : count + cfg.eval_count]]
        eval_source = cache
        if len(held) == 0:
            raise ValueError(
                "every labelled transition is in the training subset, so none is left to "
                "measure accuracy: lower --label-fraction / --label-count or pass eval_cache"
            )
    else:
        eval_candidates = labelled_transitions(eval_cache)
        assert eval_cache.actions is not None
        if eval_cache.actions.shape[1] != num_agents:
            raise ValueError(
                f"the evaluation cache has {eval_cache.actions.shape[1]} agents, the labelled "
                f"source {num_agents}"
            )
        pick = np.random.default_rng(cfg.seed + 1).permutation(len(eval_candidates))
        held = eval_candidates[pick[: cfg.eval_count]]
        eval_source = eval_cache
    return LabelledSplit(train_idx, np.sort(held), int(count), eval_source)


def train_decoder(
    model: LatentActionModel,
    cache: CodeCache,
    cfg: DecoderConfig,
    *,
    window: int = 2,
    eval_cache: CodeCache | None = None,
    progress: bool = True,
) -> tuple[ActionDecoder, DecoderReport]:
    """Train f on a seeded labelled subset of ``cache``'s transitions; score it on others.

    Args:
        model: trained latent action model (FLAM, LAM, OC+LAM; frozen here).
        cache: labelled source (default in the pipelines: the model's own random-play training
            data, see the module docstring); needs actions.
        cfg: labelled-subset size, architecture and training settings.
        window: frames per encoding window; 2 encodes each transition on its own.
        eval_cache: where the held-out transitions come from (e.g. the val split); ``None``:
            transitions of ``cache`` outside the labelled subset.
        progress: show tqdm bars.

    Returns:
        The trained decoder (eval mode, on the model's device) and its held-out report.
    """
    start_time = time.perf_counter()
    split = labelled_split(model, cache, cfg, eval_cache)
    train_idx, held, count, eval_source = split.train, split.held, split.count, split.eval_source
    assert cache.actions is not None
    num_agents, num_actions = cache.actions.shape[1], model.config.agent_actions

    device = next(model.parameters()).device
    states, actions = transition_inputs(model, cache.codes, cache.episode_starts, train_idx, window)
    labels = torch.from_numpy(cache.actions[train_idx]).to(device)
    torch.manual_seed(cfg.seed)
    decoder = ActionDecoder(
        cfg, states.shape[-1], actions.shape[-1], num_agents, num_actions, window
    ).to(device)
    final_loss = fit_decoder(decoder, states, actions, labels, cfg, progress=progress)

    assert eval_source.actions is not None
    ev_states, ev_actions = transition_inputs(
        model, eval_source.codes, eval_source.episode_starts, held, window
    )
    ev_labels = torch.from_numpy(eval_source.actions[held]).to(device)
    per_agent, joint, chance = _accuracy(decoder, ev_states, ev_actions, ev_labels)
    report = DecoderReport(
        per_agent_accuracy=per_agent,
        accuracy=float(np.mean(per_agent)),
        joint_accuracy=joint,
        labelled_transitions=int(count),
        chance=chance,
        eval_transitions=len(held),
        final_loss=final_loss,
        train_seconds=time.perf_counter() - start_time,
    )
    return decoder, report


@torch.no_grad()
def label_actions(
    model: LatentActionModel, decoder: ActionDecoder, codes: torch.Tensor | np.ndarray
) -> np.ndarray:
    """Decoded real actions of every transition of one or more whole episodes.

    Args:
        model: the latent action model the decoder was trained on.
        decoder: the trained decoder (its ``window`` fixes how transitions are encoded).
        codes: int ``(t, n)`` one episode, or ``(b, t, n)`` episodes of equal length.

    Returns:
        int64 ``(t - 1, a)`` (or ``(b, t - 1, a)``): the argmax action of every agent.
    """
    codes_np = codes.cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    single = codes_np.ndim == 2
    if single:
        codes_np = codes_np[None]
    if codes_np.ndim != 3:
        raise ValueError(f"expected codes (t, n) or (b, t, n), got shape {codes_np.shape}")
    b, t, _ = codes_np.shape
    cache = CodeCache(rearrange(codes_np, "b t n -> (b t) n"), np.arange(b + 1, dtype=np.int64) * t)
    # label_cache puts -1 on each episode's last frame: drop that row.
    out = rearrange(label_cache(model, decoder, cache), "(b t) a -> b t a", b=b)[:, :-1]
    return out[0] if single else out


@torch.no_grad()
def label_cache(
    model: LatentActionModel, decoder: ActionDecoder, cache: CodeCache, batch: int = 1024
) -> np.ndarray:
    """Decoded actions of every transition of a code cache, in the cache's own layout.

    Returns:
        int64 ``(F, a)``: row ``f`` is the decoded action from frame ``f`` to ``f + 1``, -1 on
        each episode's last frame (as ``FrameCache.actions``), so it pairs with the frames of the
        same dataset for behaviour cloning.
    """
    decoder.check_model(model)
    starts = cache.episode_starts
    last = starts[1:] - 1
    transitions = np.setdiff1d(np.arange(cache.num_frames), last)
    out = np.full((cache.num_frames, decoder.num_agents), -1, dtype=np.int64)
    was_training = decoder.training
    decoder.eval()
    for lo in range(0, len(transitions), batch):
        part = transitions[lo : lo + batch]
        states, actions = transition_inputs(model, cache.codes, starts, part, decoder.window)
        out[part] = decoder(states, actions).argmax(-1).cpu().numpy()
    decoder.train(was_training)
    return out
