"""The latent-action probe: do latent actions carry each agent's true move? (as LAPO logs it)

For every agent ``j`` a small classifier maps the latent action that explains ``j``'s move to
``j``'s true action; it is fit on one half of held-out windows and scored on the other half.
- FLAM: the latent action of the slot matched to agent ``j``: the slot whose attention has the
  most mass on ``j``'s token at frame ``t``.
- Scene models (LAM, OC+LAM): the one scene latent action, with one classifier per agent.
Binding metrics (slot models): ``own_slot``, the fraction of (frame, agent) whose matched slot is
matched to no other agent; ``same_slot``, how often an agent keeps its slot from t to t+1.
Shapes: positions ``(b, t, a, 2)`` cells ``(x, y)``; attention ``(b, t, k, n)``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from einops import repeat
from torch import nn

from latentrl.models.base import LatentActionModel
from latentrl.quantize import MAX_CATEGORICAL_CODES
from latentrl.types import CodeBatch


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """Held-out probe accuracy (mean over agents), chance level and slot binding."""

    accuracy: float
    chance: float
    per_agent: tuple[float, ...]
    own_slot: float
    same_slot: float
    samples: int

    def as_dict(self) -> dict[str, float]:
        """Figures for logs; binding metrics only where there are slots (NaN is not JSON)."""
        out = {"probe_accuracy": self.accuracy, "probe_chance": self.chance}
        if not math.isnan(self.own_slot):
            out.update(own_slot=self.own_slot, same_slot=self.same_slot)
        return out


def match_slots(attn: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Slot ``(b, t, a)`` with the most attention on each agent's token."""
    k = attn.shape[2]
    idx = repeat(tokens, "b t a -> b t k a", k=k)
    return attn.gather(3, idx).argmax(dim=2)


def binding_metrics(match: torch.Tensor) -> tuple[float, float]:
    """(own_slot, same_slot) from matched slots ``(b, t, a)``."""
    a = match.shape[-1]
    same = match[..., :, None] == match[..., None, :]
    others = same.sum(-1) - 1  # agents sharing my slot, excluding me
    own = (others == 0).float().mean().item() if a > 1 else 1.0
    keep = (match[:, 1:] == match[:, :-1]).float().mean().item() if match.shape[1] > 1 else 1.0
    return own, keep


def _fit_classifier(
    x: torch.Tensor, y: torch.Tensor, classes: int, seed: int, steps: int = 300
) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    hidden = 64
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, classes))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(p.shape[-1], 1)) ** 0.5)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net


@torch.no_grad()
def latent_features(
    model: LatentActionModel, batch: CodeBatch, cell_px: int, token_px: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-agent latent-action features ``(b, t-1, a, f)`` and the matched slots ``(b, t, a)``."""
    if batch.positions is None and model.config.factored:
        raise ValueError("the FLAM probe needs agent positions to match slots to agents")
    encoded = model.encode_states(batch.codes)
    latent = model.infer(encoded.states, batch.actions)
    cfg = model.config
    if latent.indices is not None and (cfg.bottleneck.num_codes or 1) <= MAX_CATEGORICAL_CODES:
        feats = F.one_hot(latent.indices, cfg.bottleneck.num_codes or 1).float()
    else:
        feats = latent.actions
    num_agents = batch.actions.shape[-1] if batch.actions is not None else cfg.num_agents
    match = None
    if encoded.attn is not None and batch.positions is not None:
        grid = cfg.grid
        tok = torch.div(batch.positions * cell_px + cell_px // 2, token_px, rounding_mode="floor")
        tokens = (tok[..., 1] * grid + tok[..., 0]).clamp(0, cfg.num_tokens - 1)
        match = match_slots(encoded.attn, tokens)
    if cfg.factored:
        assert match is not None
        idx = repeat(match[:, :-1], "b t a -> b t a f", f=feats.shape[-1])
        per_agent = feats.gather(2, idx)
    else:
        per_agent = repeat(feats[:, :, 0], "b t f -> b t a f", a=num_agents)
    return per_agent, match


def probe(
    model: LatentActionModel,
    batch: CodeBatch,
    cell_px: int,
    token_px: int,
    seed: int = 0,
) -> ProbeResult:
    """Fit per-agent classifiers on the first half of ``batch``'s windows, score the second."""
    if batch.actions is None:
        raise ValueError(
            "the probe needs true actions on held-out data (labels are used only here)"
        )
    was_training = model.training
    model.eval()
    feats, match = latent_features(model, batch, cell_px, token_px)
    model.train(was_training)
    labels = batch.actions
    half = feats.shape[0] // 2
    if half == 0:
        raise ValueError("the probe needs at least 2 windows")
    accs, chances = [], []
    classes = int(labels.max().item()) + 1
    for j in range(labels.shape[-1]):
        x = feats[:, :, j]
        y = labels[:, :, j]
        x_tr, y_tr = x[:half].flatten(0, 1), y[:half].flatten()
        x_te, y_te = x[half:].flatten(0, 1), y[half:].flatten()
        keep_tr, keep_te = y_tr >= 0, y_te >= 0
        x_tr, y_tr, x_te, y_te = x_tr[keep_tr], y_tr[keep_tr], x_te[keep_te], y_te[keep_te]
        with torch.enable_grad():
            net = _fit_classifier(x_tr, y_tr, classes, seed + j)
        with torch.no_grad():
            accs.append((net(x_te).argmax(-1) == y_te).float().mean().item())
        counts = torch.bincount(y_te, minlength=classes).float()
        chances.append((counts.max() / counts.sum()).item())
    own, keep = binding_metrics(match) if match is not None else (float("nan"), float("nan"))
    return ProbeResult(
        float(np.mean(accs)), float(np.mean(chances)), tuple(accs), own, keep, int(labels.numel())
    )
