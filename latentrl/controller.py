"""The learned controller: (states, real actions) -> latent actions (Garrido et al.'s direction).

The latent-action decoder f (:mod:`latentrl.decoder`) reads real actions out of latent actions;
the controller g goes the other way, so that the world model can be *driven* by real actions:
``g(s_t, u_t)`` is the latent action the model would infer for a transition in which the agents
do ``u_t`` from states ``s_t``. It is trained on the same labelled subset as f
(:func:`latentrl.decoder.labelled_split`), with the latent actions the model infers on those
transitions as targets; no other label is used.

Architecture. Each agent ``j`` doing ``u_j`` is one token (an agent embedding plus an action
embedding). FLAM (one latent action per slot): each slot's unit, an MLP of its state, is the
query of cross-attention blocks over the agent tokens, so a slot reads the action of the agent
it holds (its colour and position say which) and a background slot, attending to an extra
"nobody" token, learns the "nothing moves" latent; one head per unit gives that slot's latent
action. Scene models (LAM, OC+LAM: one
latent action): a learned query cross-attends over the units and the agent tokens.

Output per family:

- ``fsq``, ``fsq_target="classify"`` (default): logits over the C codes, cross-entropy to the
  inferred code; the latent action is the most likely code's value. Only up to
  ``latentrl.quantize.MAX_CATEGORICAL_CODES`` codes: a joint-action scene latent (5^8 codes) is
  regressed, since a head over every code would be larger than the rest of the job.
- ``fsq``, ``fsq_target="regress"``: the code's value is regressed (MSE) and then quantized to
  the nearest code.
- ``gaussian``, ``sparse``: regression (MSE) to the inferred latent action, standardised per
  dimension by the labelled subset's statistics.

Accuracy (:class:`ControllerReport`): on held-out labelled transitions, how often the decoder
reads the controller's latent actions as the real actions that went in (``decoded(g(s, u)) ==
u``, per agent and joint), and the world model's next-frame token error when driven by ``g``
against the same error when driven by the inferred latent actions.

Shapes: states ``(b, k, d_s)``; real actions int64 ``(b, a)``; latent actions ``(b, k', d_a)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn
from tqdm.auto import tqdm

from latentrl.checkpoint import load_weights, save_weights
from latentrl.config import from_dict, opt
from latentrl.data.codes import CodeCache
from latentrl.decoder import ActionDecoder, DecoderConfig, labelled_split, transition_inputs
from latentrl.models.base import LatentActionModel
from latentrl.nn.blocks import CrossBlock
from latentrl.quantize import MAX_CATEGORICAL_CODES
from latentrl.runs import write_json


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Controller g: architecture and training (the labelled subset is the decoder's)."""

    steps: int = opt(600, "optimisation steps")
    batch_size: int = opt(256, "transitions per step")
    lr: float = opt(1e-3, "AdamW learning rate")
    weight_decay: float = opt(1e-4, "AdamW weight decay")
    d_model: int = opt(64, "controller width")
    heads: int = opt(4, "attention heads")
    blocks: int = opt(2, "cross-attention blocks (units over agent tokens)")
    fsq_target: Literal["classify", "regress"] = opt(
        "classify",
        "fsq models: classify the code (cross-entropy) or regress its value and quantize",
    )
    seed: int = opt(0, "seed of the initial weights and the batch order")

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"controller steps and batch size must be >= 1, got {self.steps} and "
                f"{self.batch_size}"
            )


class LatentController(nn.Module):
    """``g(states_t, real_actions) -> latent actions`` (see the module docstring).

    Args:
        config: architecture settings.
        state_dim: ``d_s``; ``action_dim``: ``d_a``.
        num_agents: ``a``; num_actions: real actions per agent ``v``.
        factored: one latent action per unit (FLAM) or one per scene (LAM, OC+LAM).
        codebook: FSQ code values ``(C, d_a)``, or None for continuous latent actions.
    """

    def __init__(
        self,
        config: ControllerConfig,
        state_dim: int,
        action_dim: int,
        num_agents: int,
        num_actions: int,
        factored: bool,
        codebook: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.state_dim, self.action_dim = state_dim, action_dim
        self.num_agents, self.num_actions, self.factored = num_agents, num_actions, factored
        d = config.d_model
        self.classify = (
            codebook is not None
            and config.fsq_target == "classify"
            and len(codebook) <= MAX_CATEGORICAL_CODES
        )
        self.register_buffer(
            "codebook", torch.zeros(0, action_dim) if codebook is None else codebook.clone()
        )
        self.register_buffer("in_mean", torch.zeros(state_dim))
        self.register_buffer("in_std", torch.ones(state_dim))
        self.register_buffer("out_mean", torch.zeros(action_dim))
        self.register_buffer("out_std", torch.ones(action_dim))
        self.unit = nn.Sequential(nn.Linear(state_dim, d), nn.GELU(), nn.Linear(d, d))
        self.agent_emb = nn.Parameter(torch.randn(num_agents, d) * 0.02)
        self.action_emb = nn.Embedding(num_actions, d)
        self.query = nn.Parameter(torch.randn(1, d) * 0.02)
        # A token that is no agent: a slot holding background attends to it.
        self.nobody = nn.Parameter(torch.randn(1, d) * 0.02)
        self.blocks = nn.ModuleList(CrossBlock(d, config.heads) for _ in range(config.blocks))
        out = len(codebook) if self.classify and codebook is not None else action_dim
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, out))

    @property
    def discrete(self) -> bool:
        return len(self.codebook) > 0

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``(b, k', C)`` code logits (classify) or ``(b, k', d_a)`` standardised
        latent actions (regression)."""
        if states.shape[-1] != self.state_dim:
            raise ValueError(
                f"this controller was trained for states of width {self.state_dim}, got "
                f"{states.shape[-1]}: train a controller for this latent action model"
            )
        if actions.shape[-1] != self.num_agents:
            raise ValueError(
                f"this controller drives {self.num_agents} agents, got actions for "
                f"{actions.shape[-1]}"
            )
        units = self.unit((states - self.in_mean) / self.in_std)
        agents = self.agent_emb + self.action_emb(actions)  # (b, a, d)
        if self.factored:
            nobody = repeat(self.nobody, "1 d -> b 1 d", b=units.shape[0])
            x, context = units, torch.cat([nobody, agents], dim=1)
        else:
            x = repeat(self.query, "1 d -> b 1 d", b=units.shape[0])
            context = torch.cat([units, agents], dim=1)
        for block in self.blocks:
            x = block(x, context)
        return self.head(x)

    def latent(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Latent actions ``(b, k', d_a)`` for real actions ``(b, a)`` from states ``(b, k, d_s)``:
        a code value for FSQ models (most likely code, or nearest to the regressed value)."""
        out = self(states, actions)
        if self.classify:
            return self.codebook[out.argmax(-1)]
        value = out * self.out_std + self.out_mean
        if self.discrete:
            return snap_to_codes(value, self.codebook)
        return value

    # -- persistence ----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "num_agents": self.num_agents,
            "num_actions": self.num_actions,
            "factored": self.factored,
            "codes": len(self.codebook),
        }

    def save(self, folder: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (each atomically) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "config.json", self.meta())
        save_weights(self, folder / "model.safetensors")

    @classmethod
    def load(cls, folder: Path, device: str | torch.device = "cpu") -> LatentController:
        """Rebuild a saved controller; never unpickles."""
        folder = Path(folder)
        path = folder / "config.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no controller config at {path}: is {folder} a folder written by "
                "LatentController.save (train one with latentrl.controller.train_controller)?"
            )
        meta = json.loads(path.read_text())
        cfg = from_dict(ControllerConfig, meta.pop("config"))
        codes = meta.pop("codes")
        codebook = torch.zeros(codes, meta["action_dim"]) if codes else None
        controller = cls(cfg, codebook=codebook, **meta).to(device)
        load_weights(controller, folder / "model.safetensors")
        return controller.eval()


def nearest_code(values: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index ``(...)`` of the code ``(C, d_a)`` nearest to each value ``(..., d_a)``."""
    flat = rearrange(values, "... d -> (...) d")
    return torch.cdist(flat, codebook).argmin(-1).reshape(values.shape[:-1])


def snap_to_codes(values: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Value ``(..., d_a)`` of the code nearest to each value. An FSQ codebook is the full grid
    of its levels, so the nearest code is the nearest level in each dimension, found without a
    distance to each of the C codes (C = 5^8 for a joint-action latent); any other codebook
    goes through :func:`nearest_code`."""
    levels = [torch.unique(codebook[:, j]) for j in range(codebook.shape[1])]
    if math.prod(len(lv) for lv in levels) != len(codebook):
        return codebook[nearest_code(values, codebook)]
    snapped = [lv[(values[..., j, None] - lv).abs().argmin(-1)] for j, lv in enumerate(levels)]
    return torch.stack(snapped, dim=-1)


def model_codebook(model: LatentActionModel) -> torch.Tensor | None:
    """Every FSQ code's value ``(C, d_a)`` of the model's bottleneck, or None (continuous)."""
    count = model.config.bottleneck.num_codes
    if count is None:
        return None
    bottleneck = model.idm.bottleneck  # type: ignore[union-attr]
    device = next(model.parameters()).device
    return bottleneck.codes_from_indices(torch.arange(count, device=device))


def fit_controller(
    controller: LatentController,
    states: torch.Tensor,
    labels: torch.Tensor,
    latents: torch.Tensor,
    cfg: ControllerConfig,
    *,
    progress: bool = True,
) -> float:
    """Supervised training on precomputed inputs ``(B, k, d_s)``, real actions ``(B, a)`` and
    target latent actions ``(B, k', d_a)``; returns the final loss (mean of the last 50)."""
    if len(states) == 0:
        raise ValueError("no labelled transitions to train the controller on")
    with torch.no_grad():
        flat = rearrange(states, "b k d -> (b k) d")
        controller.in_mean.copy_(flat.mean(0))
        controller.in_std.copy_(flat.std(0).clamp_min(1e-3))
        lat = rearrange(latents, "b k d -> (b k) d")
        controller.out_mean.copy_(lat.mean(0))
        controller.out_std.copy_(lat.std(0).clamp_min(1e-3))
    target_codes = nearest_code(latents, controller.codebook) if controller.classify else None
    controller.train()
    opt = torch.optim.AdamW(controller.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="controller", disable=not progress)
    for _ in bar:
        pick = torch.randint(len(states), (min(cfg.batch_size, len(states)),), generator=gen)
        pick = pick.to(states.device)
        out = controller(states[pick], labels[pick])
        if target_codes is not None:
            loss = F.cross_entropy(
                rearrange(out, "b k c -> (b k) c"), rearrange(target_codes[pick], "b k -> (b k)")
            )
        else:
            target = (latents[pick] - controller.out_mean) / controller.out_std
            loss = F.mse_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    controller.eval()
    return float(np.mean(losses[-50:]))


@dataclasses.dataclass(frozen=True)
class ControllerReport:
    """Held-out figures of a controller (see the module docstring).

    ``decoded_accuracy`` (per agent, mean) and ``decoded_joint_accuracy``: the decoder reads
    ``g(s, u)`` as ``u``; ``inferred_decoded_accuracy``: the decoder on the inferred latents
    (its own accuracy, the ceiling). ``token_error`` / ``changed_token_error``: share of
    next-frame tokens (of tokens that change) the world model gets wrong when driven by ``g``;
    ``inferred_*`` the same with the inferred latents. ``latent_agreement``: share of units whose
    code equals the inferred one (FSQ), or the R^2 of the latents (continuous).
    """

    decoded_per_agent: tuple[float, ...]
    decoded_accuracy: float
    decoded_joint_accuracy: float
    inferred_decoded_accuracy: float
    token_error: float
    changed_token_error: float
    inferred_token_error: float
    inferred_changed_token_error: float
    latent_agreement: float
    labelled_transitions: int
    eval_transitions: int
    final_loss: float = math.nan
    train_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@torch.no_grad()
def token_errors(
    model: LatentActionModel,
    states: torch.Tensor,
    latents: torch.Tensor,
    now: torch.Tensor,
    nxt: torch.Tensor,
    batch: int = 512,
) -> tuple[float, float]:
    """(share of wrong next-frame tokens, share wrong among the tokens that change) when the
    model predicts from ``states`` ``(B, k, d_s)`` with ``latents`` ``(B, k', d_a)``; codes of
    the current and next frames ``(B, n)``."""
    pred = torch.cat(
        [
            model.aggregator.generate(
                model.predict_next(states[i : i + batch], latents[i : i + batch])
            )
            for i in range(0, len(states), batch)
        ]
    )
    wrong = pred != nxt
    changed = now != nxt
    frac_changed = float(wrong[changed].float().mean()) if changed.any() else math.nan
    return float(wrong.float().mean()), frac_changed


@torch.no_grad()
def evaluate_controller(
    model: LatentActionModel,
    decoder: ActionDecoder,
    controller: LatentController,
    states: torch.Tensor,
    latents: torch.Tensor,
    labels: torch.Tensor,
    now: torch.Tensor,
    nxt: torch.Tensor,
) -> dict[str, Any]:
    """The figures of :class:`ControllerReport` (without the training ones) on held-out inputs:
    states, inferred latents, real actions ``(B, a)``, current and next codes ``(B, n)``."""
    model.eval()
    driven = controller.latent(states, labels)
    decoded = decoder(states, driven).argmax(-1)
    right = decoded == labels
    own = (decoder(states, latents).argmax(-1) == labels).float().mean()
    err, changed = token_errors(model, states, driven, now, nxt)
    ref_err, ref_changed = token_errors(model, states, latents, now, nxt)
    if controller.discrete:
        cb = controller.codebook
        same = snap_to_codes(driven, cb) == snap_to_codes(latents, cb)
        agreement = float(same.all(-1).float().mean())
    else:
        resid = (driven - latents).square().sum()
        total = (latents - latents.mean(dim=(0, 1))).square().sum().clamp_min(1e-12)
        agreement = float(1 - resid / total)
    return {
        "decoded_per_agent": tuple(right.float().mean(0).tolist()),
        "decoded_accuracy": float(right.float().mean()),
        "decoded_joint_accuracy": float(right.all(-1).float().mean()),
        "inferred_decoded_accuracy": float(own),
        "token_error": err,
        "changed_token_error": changed,
        "inferred_token_error": ref_err,
        "inferred_changed_token_error": ref_changed,
        "latent_agreement": agreement,
    }


def train_controller(
    model: LatentActionModel,
    decoder: ActionDecoder,
    cache: CodeCache,
    label_cfg: DecoderConfig,
    cfg: ControllerConfig | None = None,
    *,
    eval_cache: CodeCache | None = None,
    progress: bool = True,
) -> tuple[LatentController, ControllerReport]:
    """Train g on the decoder's labelled subset of ``cache`` (``label_cfg`` picks it, as in
    :func:`latentrl.decoder.train_decoder`) and measure it on the held-out transitions.

    Returns the controller (eval mode, on the model's device) and its report.
    """
    cfg = cfg or ControllerConfig(seed=label_cfg.seed)
    start = time.perf_counter()
    model.eval()
    split = labelled_split(model, cache, label_cfg, eval_cache)
    window = decoder.window
    states, latents = transition_inputs(
        model, cache.codes, cache.episode_starts, split.train, window
    )
    assert cache.actions is not None
    device = states.device
    labels = torch.from_numpy(cache.actions[split.train]).to(device)
    torch.manual_seed(cfg.seed)
    controller = LatentController(
        cfg,
        states.shape[-1],
        latents.shape[-1],
        labels.shape[1],
        model.config.agent_actions,
        factored=latents.shape[1] == states.shape[1] and model.config.factored,
        codebook=model_codebook(model),
    ).to(device)
    final = fit_controller(controller, states, labels, latents, cfg, progress=progress)
    src = split.eval_source
    assert src.actions is not None
    ev_states, ev_latents = transition_inputs(
        model, src.codes, src.episode_starts, split.held, window
    )
    figures = evaluate_controller(
        model,
        decoder,
        controller,
        ev_states,
        ev_latents,
        torch.from_numpy(src.actions[split.held]).to(device),
        torch.from_numpy(src.codes[split.held].astype(np.int64)).to(device),
        torch.from_numpy(src.codes[split.held + 1].astype(np.int64)).to(device),
    )
    report = ControllerReport(
        **figures,
        labelled_transitions=split.count,
        eval_transitions=len(split.held),
        final_loss=final,
        train_seconds=time.perf_counter() - start,
    )
    return controller, report


@torch.no_grad()
def drive(
    model: LatentActionModel,
    controller: LatentController,
    context: torch.Tensor,
    actions: torch.Tensor,
) -> torch.Tensor:
    """Codes ``(b, s, n)`` of a rollout driven by real actions ``(b, s, a)`` from ``context``
    codes ``(b, t0, n)``: at each step the controller turns the real actions into latent actions
    from the current states, and the model predicts, decodes and re-encodes the next frame as
    :meth:`LatentActionModel.rollout` does."""
    if actions.ndim != 3 or actions.shape[0] != context.shape[0]:
        raise ValueError(
            f"real actions must be (b, steps, agents) with b = {context.shape[0]}, got "
            f"{tuple(actions.shape)}"
        )
    state = model.encode_states(context).states[:, -1]
    frames = []
    for i in range(actions.shape[1]):
        predicted = model.predict_next(state, controller.latent(state, actions[:, i]))
        codes = model.aggregator.generate(predicted)
        frames.append(codes)
        state = model.encode_next(codes, state)
    return torch.stack(frames, dim=1)
