"""Latent-action views: slot-attention overlays, UMAP of latent actions, factor–entity
correspondence and a DCI disentanglement score, plus labelled video grids.

- *Attention overlay*: each slot gets a colour; a pixel shows the frame in grey blended with the
  attention-weighted mix of slot colours (slot attention sums to 1 over slots per token).
- *UMAP* (FLAM project page): one point per (transition, slot) on held-out windows, coloured by
  the true action of the agent the slot is bound to at that transition (labels only colour the
  plot; unbound slots grey). Scene models: one point per transition coloured by agent 0's action.
  FSQ latent actions take only ``prod(levels)`` values, so the embedding is of the IDM's
  continuous output just before the bottleneck.
- *Correspondence* (slots x agents): how often slot ``k`` is agent ``j``'s slot (most attention on
  its token), in raw slot indices and with factors aligned per window (factor ``j`` = the slot
  bound to agent ``j`` at the window's first frame, one-to-one; the rest in index order).
- *DCI* (Eastwood & Williams, 2018): an importance matrix ``R`` (factors x agents) from one
  predictor per agent (its true action from every factor's latent action); disentanglement
  ``D = sum_k rho_k (1 - H_A(R_k. / sum_j R_kj))`` with ``rho_k`` factor ``k``'s share of the
  total importance; completeness ``C`` likewise per agent over factors; informativeness = the
  predictors' held-out accuracy (predictors: gradient-boosted trees, or an L1 logistic
  regression where speed matters, as in the training logs). Factors are aligned per window as above: FLAM's slots are
  exchangeable, so raw slot ``k`` holds different agents in different episodes (also reported).

Shapes: frames uint8 ``(t, h, w, c)``; attention ``(t, K, n)`` on a ``grid x grid`` token grid;
codes ``(b, t, n)``; positions ``(b, t, a, 2)`` cells ``(x, y)``; true actions ``(b, t - 1, a)``;
importance ``R (k, a)``; images uint8 ``(H, W, 3)``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from PIL import Image, ImageDraw, ImageFont
from scipy.optimize import linear_sum_assignment
from torch.utils.tensorboard import SummaryWriter

from latentrl.data.codes import CodeCache
from latentrl.models import LatentActionModel
from latentrl.tokenizer import Tokenizer
from latentrl.types import CodeBatch
from latentrl.viz import grid_frames, log_gif

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Predictor = Literal["gbt", "logistic"]
UNBOUND = -1
GREY = (150, 150, 150)
# Mirrors ``envs.multigrid.core.Action`` (latentrl does not import envs; a test checks they agree).
MULTIGRID_ACTION_NAMES = ("stay", "up", "down", "left", "right")

MAX_VIEW_ONE_HOT = 256
"""Larger codebooks (a monolithic model's joint-action FSQ: 5^8 codes) enter the correspondence
classifiers as their FSQ code vectors (the same information): a one-hot of 390625 codes would
take gigabytes and minutes of classifier fitting at every media step."""


# -- drawing -------------------------------------------------------------------------------------
def slot_colours(k: int) -> np.ndarray:
    """``k`` distinct colours ``(k, 3)`` uint8 (matplotlib's tab20, then hsv)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20" if k <= 20 else "hsv"]
    steps = np.arange(k) / (20 if k <= 20 else k)
    return (np.asarray(cmap(steps))[:, :3] * 255).round().astype(np.uint8)


def upsample_attention(attn: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Attention ``(t, k, n)`` on a square token grid -> per pixel ``(t, k, h, w)`` (nearest:
    each token is a patch)."""
    grid = math.isqrt(attn.shape[-1])
    maps = rearrange(attn.float(), "t k (gh gw) -> t k gh gw", gh=grid)
    return repeat(
        maps.cpu().numpy(), "t k gh gw -> t k (gh ph) (gw pw)", ph=height // grid, pw=width // grid
    )


def attention_overlay(frames: np.ndarray, attn: torch.Tensor, alpha: float = 0.6) -> np.ndarray:
    """Frames ``(t, h, w, c)`` in grey, each pixel tinted by its slots' colours weighted by their
    attention ``(t, h, w, c)``. Grey, because agents' own colours would hide the slots'."""
    h, w = frames.shape[1:3]
    maps = upsample_attention(attn, h, w)  # (t, k, h, w), sums to ~1 over k
    colours = slot_colours(maps.shape[1]).astype(np.float32)
    tint = np.einsum("tkhw,kc->thwc", maps, colours)
    grey = frames.astype(np.float32).mean(axis=-1, keepdims=True)
    out = (1 - alpha) * grey + alpha * tint
    return out.clip(0, 255).round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a labelled grid: a video ``(t, h, w, c)``, its label, per-frame captions and
    an optional per-frame token mask ``(t, n)`` outlined on the frames."""

    label: str
    frames: np.ndarray
    captions: tuple[str, ...] = ()
    outline: np.ndarray | None = None


def _outline(draw: ImageDraw.ImageDraw, mask: np.ndarray, x0: int, y0: int, cell: int) -> None:
    grid = math.isqrt(mask.shape[0])
    for tok in np.flatnonzero(mask):
        r, c = divmod(int(tok), grid)
        box = (x0 + c * cell, y0 + r * cell, x0 + (c + 1) * cell - 1, y0 + (r + 1) * cell - 1)
        draw.rectangle(box, outline=(255, 230, 0), width=2)


def labelled_strip(
    rows: Sequence[Row], scale: int = 4, label_width: int = 150, title: str = ""
) -> np.ndarray:
    """Every frame of every row side by side: one image ``(H, W, 3)`` with row labels on the
    left, ``t=i`` column headers and each frame's caption under it."""
    t = min(len(r.frames) for r in rows)
    h, w = rows[0].frames.shape[1:3]
    fh, fw, gap, cap = h * scale, w * scale, 4, 14
    top = 34 if title else 18
    width = label_width + t * (fw + gap)
    height = top + len(rows) * (fh + cap + gap)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    small, big = _font(11), _font(13)
    if title:
        draw.text((4, 2), title, fill=(0, 0, 0), font=big)
    for i in range(t):
        draw.text(
            (label_width + i * (fw + gap) + 2, top - 15), f"t={i}", fill=(0, 0, 0), font=small
        )
    for r, row in enumerate(rows):
        y = top + r * (fh + cap + gap)
        draw.multiline_text((4, y + 4), row.label, fill=(0, 0, 0), font=small, spacing=2)
        for i in range(t):
            x = label_width + i * (fw + gap)
            frame = Image.fromarray(row.frames[i]).resize((fw, fh), Image.Resampling.NEAREST)
            canvas.paste(frame, (x, y))
            if row.outline is not None:
                _outline(draw, row.outline[i], x, y, fw // math.isqrt(row.outline.shape[1]))
            if i < len(row.captions) and row.captions[i]:
                draw.text((x + 2, y + fh), row.captions[i], fill=(0, 0, 0), font=small)
    return np.asarray(canvas)


def labelled_video(rows: Sequence[Row], scale: int = 4, label_width: int = 150) -> np.ndarray:
    """Rows stacked vertically, animated over time ``(t, H, W, 3)``; each row's label (and the
    current frame's caption) on its left."""
    t = min(len(r.frames) for r in rows)
    h, w = rows[0].frames.shape[1:3]
    fh, fw, gap = h * scale, w * scale, 4
    width, height = label_width + fw, len(rows) * (fh + gap)
    small = _font(11)
    video = []
    for i in range(t):
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for r, row in enumerate(rows):
            y = r * (fh + gap)
            text = row.label
            if i < len(row.captions) and row.captions[i]:
                text += f"\n{row.captions[i]}"
            draw.multiline_text((4, y + 4), f"{text}\nt={i}", fill=(0, 0, 0), font=small)
            frame = Image.fromarray(row.frames[i]).resize((fw, fh), Image.Resampling.NEAREST)
            canvas.paste(frame, (label_width, y))
            if row.outline is not None:
                _outline(
                    draw, row.outline[i], label_width, y, fw // math.isqrt(row.outline.shape[1])
                )
        video.append(np.asarray(canvas))
    return np.stack(video)


def decode_frames(tokenizer: Tokenizer, codes: torch.Tensor) -> np.ndarray:
    """Code indices ``(t, n)`` -> frames uint8 ``(t, h, w, c)`` with the tokenizer's decoder."""
    with torch.no_grad():
        x = tokenizer.decode_indices(codes.to(next(tokenizer.parameters()).device))
    return rearrange(x.mul(255).round().byte().cpu().numpy(), "t c h w -> t h w c")


def figure_image(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure to uint8 ``(H, W, 3)`` (on its own Agg canvas: no pyplot, no
    global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# -- latent actions per slot on held-out windows -------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SlotLatents:
    """Latent actions of held-out windows with their slot bindings (slot models) or per scene.

    ``features (b, t - 1, k', f)``: the IDM output before the bottleneck; ``actions
    (b, t - 1, k', d_a)``; ``codes (b, t - 1, k')`` FSQ indices or None; ``attn (b, t, K, n)``
    or None; ``match (b, t, a)`` slot with most attention on each agent's token, or None;
    ``true_actions (b, t - 1, a)``; ``agent_tokens (b, t, a)``.
    """

    features: torch.Tensor
    actions: torch.Tensor
    codes: torch.Tensor | None
    attn: torch.Tensor | None
    match: torch.Tensor | None
    true_actions: torch.Tensor
    agent_tokens: torch.Tensor
    factored: bool
    num_codes: int | None


@torch.no_grad()
def slot_latents(
    model: LatentActionModel, batch: CodeBatch, cell_px: int, token_px: int
) -> SlotLatents:
    """Encode ``batch`` (with actions and positions), infer latent actions, bind slots to agents."""
    if batch.actions is None or batch.positions is None:
        raise ValueError(
            "latent-action views need true actions and agent positions on held-out data "
            "(a MultiGrid code cache from train_tokenizer.py has both)"
        )
    bottleneck = getattr(getattr(model, "idm", None), "bottleneck", None)
    if bottleneck is None:
        raise ValueError(
            f"a {model.config.model} model has no inverse dynamics (WM uses true actions): "
            "latent-action views need a flam, lam or oclam run"
        )
    captured: list[torch.Tensor] = []
    # The IDM's continuous output is the bottleneck's input: FSQ keeps only a few values of it.
    hook = bottleneck.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    was_training = model.training
    model.eval()
    try:
        encoded = model.encode_states(batch.codes)
        latent = model.infer(encoded.states, None)
    finally:
        hook.remove()
        model.train(was_training)
    grid = model.config.grid
    tok = torch.div(batch.positions * cell_px + cell_px // 2, token_px, rounding_mode="floor")
    tokens = (tok[..., 1] * grid + tok[..., 0]).clamp(0, grid * grid - 1)
    match = None
    if encoded.attn is not None:
        k = encoded.attn.shape[2]
        match = encoded.attn.gather(3, repeat(tokens, "b t a -> b t k a", k=k)).argmax(dim=2)

    def cpu(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.detach().cpu()

    return SlotLatents(
        features=captured[-1].detach().cpu(),
        actions=latent.actions.cpu(),
        codes=cpu(latent.indices),
        attn=cpu(encoded.attn),
        match=cpu(match),
        true_actions=batch.actions.cpu(),
        agent_tokens=tokens.cpu(),
        factored=model.config.factored,
        num_codes=bottleneck.config.num_codes,
    )


def bound_agent(lat: SlotLatents) -> torch.Tensor:
    """Agent each latent action explains ``(b, t - 1, k')``: for slots, the agent whose token
    the slot holds most of among the agents matched to it at frame ``t`` (else -1); for scene
    models, agent 0 (one colour is needed; the joint action has too many classes)."""
    b, s, k = lat.actions.shape[:3]
    if not lat.factored or lat.match is None or lat.attn is None:
        return torch.zeros(b, s, k, dtype=torch.long)
    match = lat.match[:, :-1]  # (b, s, a)
    held = lat.attn[:, :-1].gather(
        3, repeat(lat.agent_tokens[:, :-1], "b s a -> b s k a", k=lat.attn.shape[2])
    )  # (b, s, K, a): slot k's attention on agent a's token
    is_match = match[:, :, None, :] == torch.arange(k)[None, None, :, None]
    score = torch.where(is_match, held, torch.full_like(held, -1.0))
    best = score.argmax(dim=-1)
    return torch.where(is_match.any(-1), best, torch.full_like(best, UNBOUND))


def colour_labels(lat: SlotLatents) -> np.ndarray:
    """True action of each point's bound agent, flat over ``(b, t - 1, k')``; -1 = unbound."""
    agent = bound_agent(lat)
    acts = lat.true_actions  # (b, s, a)
    picked = acts.gather(2, agent.clamp(min=0))
    return torch.where(agent >= 0, picked, torch.full_like(picked, UNBOUND)).flatten().numpy()


def umap_points(
    lat: SlotLatents, max_points: int = 4000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """2-D UMAP of latent actions: (points ``(N, 2)``, true-action labels ``(N,)``, codes)."""
    import umap

    feats = rearrange(lat.features, "b s k f -> (b s k) f").float().numpy()
    labels = colour_labels(lat)
    codes = None if lat.codes is None else lat.codes.flatten().numpy()
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(feats))[:max_points])
    feats, labels = feats[keep], labels[keep]
    codes = None if codes is None else codes[keep]
    reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed)
    with warnings.catch_warnings():
        # A seed makes UMAP single-threaded and it says so every time; we want the seed.
        warnings.filterwarnings("ignore", message="n_jobs value")
        points = reducer.fit_transform(feats)
    return points, labels, codes


def umap_figure(
    points: np.ndarray,
    labels: np.ndarray,
    codes: np.ndarray | None,
    action_names: Sequence[str],
    title: str,
) -> np.ndarray:
    """Scatter of UMAP points coloured by true action (and by FSQ code if given)."""
    panels = 2 if codes is not None else 1
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * panels, 5))
    axes = fig.subplots(1, panels, squeeze=False)
    ax = axes[0, 0]
    unbound = labels == UNBOUND
    ax.scatter(*points[unbound].T, s=3, c=[np.array(GREY) / 255], label="no agent", alpha=0.4)
    cmap = colormaps["tab10"]
    for a, name in enumerate(action_names):
        sel = labels == a
        if sel.any():
            ax.scatter(*points[sel].T, s=4, color=cmap(a), label=name, alpha=0.7)
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    ax.legend(markerscale=3, fontsize=8, loc="best")
    if codes is not None:
        ax2 = axes[0, 1]
        sc = ax2.scatter(*points.T, s=4, c=codes, cmap="tab10", alpha=0.7)
        ax2.set(title="same points, coloured by latent code (FSQ index)", xticks=[], yticks=[])
        fig.colorbar(sc, ax=ax2, ticks=np.unique(codes))
    fig.tight_layout()
    return figure_image(fig)


# -- correspondence and DCI ----------------------------------------------------------------------
def match_fraction(match: torch.Tensor, num_slots: int) -> np.ndarray:
    """Fraction of frames slot ``k`` is agent ``j``'s slot ``(K, a)`` from ``match (b, t, a)``;
    each column sums to 1."""
    onehot = F.one_hot(match, num_slots).float()  # (b, t, a, K)
    return rearrange(onehot.mean(dim=(0, 1)), "a k -> k a").numpy()


def align_factors(attn0: torch.Tensor, tokens0: torch.Tensor) -> torch.Tensor:
    """Per window, a slot order ``(b, K)``: slot bound one-to-one to agent ``j`` at the first
    frame (Hungarian on attention to agents' tokens) first, then the other slots by index.

    ``attn0 (b, K, n)``, ``tokens0 (b, a)``; needs ``K >= a``.
    """
    b, k, _ = attn0.shape
    a = tokens0.shape[1]
    if k < a:
        raise ValueError(f"aligning factors to agents needs K >= agents, got K={k} < {a}")
    orders = []
    for i in range(b):
        held = attn0[i][:, tokens0[i]].cpu().numpy()  # (K, a)
        rows, cols = linear_sum_assignment(-held)
        bound = [int(rows[list(cols).index(j)]) for j in range(a)]
        orders.append(bound + [s for s in range(k) if s not in bound])
    return torch.tensor(orders, dtype=torch.long)


def aligned_match_fraction(lat: SlotLatents) -> np.ndarray:
    """Like :func:`match_fraction` with factors aligned per window (:func:`align_factors`)."""
    assert lat.attn is not None and lat.match is not None
    order = align_factors(lat.attn[:, 0], lat.agent_tokens[:, 0])  # (b, K)
    inverse = torch.argsort(order, dim=1)  # slot -> factor
    factor = inverse.gather(1, rearrange(lat.match, "b t a -> b (t a)")).view_as(lat.match)
    return match_fraction(factor, lat.attn.shape[2])


def factor_features(lat: SlotLatents, aligned: bool) -> torch.Tensor:
    """Per-factor latent-action features ``(b, t - 1, k', f)``: one-hot FSQ codes (codebooks of
    at most :data:`MAX_VIEW_ONE_HOT` codes), else the latent action vectors; factors aligned per
    window if ``aligned``."""
    if lat.codes is not None and lat.num_codes is not None and lat.num_codes <= MAX_VIEW_ONE_HOT:
        feats = F.one_hot(lat.codes, lat.num_codes).float()
    else:
        feats = lat.actions.float()
    if aligned and lat.factored and lat.attn is not None:
        order = align_factors(lat.attn[:, 0], lat.agent_tokens[:, 0])
        idx = repeat(order, "b k -> b s k f", s=feats.shape[1], f=feats.shape[-1])
        feats = feats.gather(2, idx)
    return feats


def _fit(
    x: np.ndarray, y: np.ndarray, predictor: Predictor, seed: int
) -> tuple[object, np.ndarray]:
    """Fit a classifier; returns it and per-feature importances ``(f,)``."""
    if predictor == "gbt":
        from sklearn.ensemble import GradientBoostingClassifier

        clf = GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=seed)
        clf.fit(x, y)
        return clf, clf.feature_importances_
    if predictor == "logistic":
        import sklearn
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        # L1: an L2 fit spreads small weights over every factor, which reads as entanglement.
        version = tuple(int(v) for v in sklearn.__version__.split(".")[:2])
        l1 = {"l1_ratio": 1.0} if version >= (1, 8) else {"penalty": "l1"}
        # Few iterations: separable one-hot codes never converge, and the support (which
        # factors matter) is settled long before the weights stop growing.
        clf = LogisticRegression(
            solver="saga", C=1.0, max_iter=150, tol=1e-3, random_state=seed, **l1
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, y)
        return clf, np.abs(clf.coef_).sum(axis=0)
    raise ValueError(f"unknown predictor {predictor!r}: use gbt or logistic")


@dataclasses.dataclass(frozen=True)
class DCI:
    """Importance ``R (k, a)``, disentanglement, completeness, per-agent informativeness (held-out
    accuracy) and its chance level (the majority action's share). Near chance, ``R`` is fitted
    noise and so is the disentanglement."""

    importance: np.ndarray
    disentanglement: float
    completeness: float
    informativeness: tuple[float, ...]
    per_factor: tuple[float, ...]
    chance: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, object]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(float(v), 4)

        return {
            "disentanglement": num(self.disentanglement),
            "completeness": num(self.completeness),
            "informativeness": [num(v) for v in self.informativeness],
            "chance": [num(v) for v in self.chance],
            "per_factor_disentanglement": [num(v) for v in self.per_factor],
            "importance": np.round(self.importance, 4).tolist(),
        }


def _entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of ``p`` (rows sum to 1) in log base ``base``."""
    logs = np.log(np.where(p > 0, p, 1.0)) / math.log(base)
    return -(p * logs).sum(axis=-1)


def dci_scores(importance: np.ndarray) -> tuple[float, float, tuple[float, ...]]:
    """(disentanglement, completeness, per-factor disentanglement) of ``R (k, a)`` (Eastwood &
    Williams 2018). One agent: disentanglement is undefined (NaN); one factor: completeness is."""
    r = np.clip(np.asarray(importance, np.float64), 0, None)
    k, a = r.shape
    total = r.sum()
    if total <= 0:
        return math.nan, math.nan, tuple([math.nan] * k)
    row = r.sum(1)
    p_rows = r / np.where(row > 0, row, 1)[:, None]
    per_factor = 1 - _entropy(p_rows, a) if a > 1 else np.full(k, math.nan)
    d = float((row / total * per_factor).sum()) if a > 1 else math.nan
    col = r.sum(0)
    p_cols = (r / np.where(col > 0, col, 1)[None]).T
    per_agent = 1 - _entropy(p_cols, k) if k > 1 else np.full(a, math.nan)
    c = float((col / total * per_agent).sum()) if k > 1 else math.nan
    return d, c, tuple(float(v) for v in per_factor)


def dci(lat: SlotLatents, aligned: bool = True, predictor: Predictor = "gbt", seed: int = 0) -> DCI:
    """DCI of latent actions (factors) against agents' true actions.

    One predictor per agent maps every factor's features to that agent's action; it is fit on
    the first half of the windows and scored on the second (informativeness). Importances are
    summed over each factor's features and normalised per agent (each column of ``R`` sums to 1).
    """
    feats = factor_features(lat, aligned)  # (b, s, k, f)
    b, _, k, f = feats.shape
    labels = lat.true_actions  # (b, s, a)
    half = b // 2
    if half == 0:
        raise ValueError("DCI needs at least 2 held-out windows")
    x = rearrange(feats, "b s k f -> b s (k f)").numpy()
    importance = np.zeros((k, labels.shape[-1]))
    accs, chances = [], []
    for j in range(labels.shape[-1]):
        y = labels[..., j].numpy()
        x_tr, y_tr = x[:half].reshape(-1, k * f), y[:half].reshape(-1)
        x_te, y_te = x[half:].reshape(-1, k * f), y[half:].reshape(-1)
        keep_tr, keep_te = y_tr >= 0, y_te >= 0
        x_tr, y_tr, x_te, y_te = x_tr[keep_tr], y_tr[keep_tr], x_te[keep_te], y_te[keep_te]
        chances.append(float(np.bincount(y_te).max() / len(y_te)) if len(y_te) else math.nan)
        if len(np.unique(y_tr)) < 2:
            accs.append(math.nan)
            continue
        clf, feat_imp = _fit(x_tr, y_tr, predictor, seed + j)
        accs.append(float((clf.predict(x_te) == y_te).mean()))  # type: ignore[attr-defined]
        per_factor = feat_imp.reshape(k, f).sum(axis=1)
        importance[:, j] = per_factor / per_factor.sum() if per_factor.sum() > 0 else 0.0
    d, c, per = dci_scores(importance)
    return DCI(importance, d, c, tuple(accs), per, tuple(chances))


def factor_names(lat: SlotLatents, aligned: bool) -> list[str]:
    """Row names of a correspondence/importance matrix."""
    k = lat.actions.shape[2]
    if not lat.factored:
        return ["scene"]
    a = lat.true_actions.shape[-1]
    if aligned:
        return [f"slot of agent {j}" if j < a else f"other slot {j - a + 1}" for j in range(k)]
    return [f"slot {j}" for j in range(k)]


def correspondence_figure(
    panels: Sequence[tuple[str, np.ndarray, list[str]]], agents: int, title: str = ""
) -> np.ndarray:
    """Heatmaps ``(k, a)`` side by side with their values written in the cells."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(panels) + 1, 0.32 * max(len(p[2]) for p in panels) + 2))
    axes = fig.subplots(1, len(panels))
    axes = np.atleast_1d(axes)
    for ax, (name, mat, rows) in zip(axes, panels, strict=True):
        ax.imshow(mat, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(agents), [f"agent {j}" for j in range(agents)], fontsize=7)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(name, fontsize=9)
        for (r, c), v in np.ndenumerate(mat):
            if v >= 0.005:
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if v > 0.5 else "white")  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return figure_image(fig)


# -- attention views -----------------------------------------------------------------------------
def attention_rows(frames: np.ndarray, attn: torch.Tensor) -> list[np.ndarray]:
    """[frames, overlay] rows for :func:`latentrl.viz.grid_frames`, each ``(t, h, w, c)``."""
    return [frames, attention_overlay(frames, attn)]


def attention_legend(names: Sequence[str], width: int) -> np.ndarray:
    """A strip of slot colour swatches with names ``(H, width, 3)``."""
    colours = slot_colours(len(names))
    per_row = max(1, width // 130)
    rows = math.ceil(len(names) / per_row)
    canvas = Image.new("RGB", (width, rows * 18 + 4), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(11)
    for i, name in enumerate(names):
        x, y = (i % per_row) * 130 + 4, (i // per_row) * 18 + 4
        draw.rectangle((x, y, x + 12, y + 12), fill=tuple(int(v) for v in colours[i]))
        draw.text((x + 16, y), name, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def slot_names(lat: SlotLatents, window: int = 0) -> list[str]:
    """``slot k (agent j)`` for slots matched to an agent at the window's first frame."""
    assert lat.attn is not None
    k = lat.attn.shape[2]
    names = [f"slot {s}" for s in range(k)]
    if lat.match is not None:
        for j, s in enumerate(lat.match[window, 0].tolist()):
            names[s] += f" (agent {j})" if "agent" not in names[s] else f"+{j}"
    return names


# -- training-time logging -----------------------------------------------------------------------
def training_views(
    model: LatentActionModel,
    tokenizer: Tokenizer,
    batch: CodeBatch,
    cell_px: int,
    token_px: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Cheap views for tensorboard: ``attention`` video ``(t, H, W, 3)`` of the first window
    of ``batch`` (frames | slot overlay) and a ``correspondence`` image
    ``(H, W, 3)`` (match fractions and a logistic-predictor DCI; no UMAP, which is slow)."""
    lat = slot_latents(model, batch, cell_px, token_px)
    out: dict[str, np.ndarray] = {}
    if lat.attn is not None:
        frames = decode_frames(tokenizer, batch.codes[0])
        out["attention"] = grid_frames(attention_rows(frames, lat.attn[0]))
    agents = lat.true_actions.shape[-1]
    score = dci(lat, aligned=True, predictor="logistic", seed=seed)
    panels = [("DCI importance R (aligned)", score.importance, factor_names(lat, True))]
    if lat.match is not None and lat.attn is not None:
        panels.insert(0, ("slot = agent's slot (aligned)", aligned_match_fraction(lat),
                          factor_names(lat, True)))  # fmt: skip
    d = score.disentanglement
    out["correspondence"] = correspondence_figure(
        panels, agents, title=f"DCI disentanglement {d:.3f}" if not math.isnan(d) else ""
    )
    return out


def log_training_views(
    writer: SummaryWriter,
    step: int,
    model: LatentActionModel,
    tokenizer: Tokenizer,
    batch: CodeBatch,
    cell_px: int,
    token_px: int,
) -> None:
    """Log :func:`training_views` as ``eval/attention`` (GIF) and ``eval/correspondence``."""
    views = training_views(model, tokenizer, batch, cell_px, token_px)
    if "attention" in views:
        log_gif(writer, "eval/attention", views["attention"], step)
    writer.add_image("eval/correspondence", views["correspondence"], step, dataformats="HWC")


# -- code meanings -------------------------------------------------------------------------------
def code_action_counts(lat: SlotLatents, num_codes: int, num_actions: int) -> np.ndarray:
    """How often each FSQ code ``(C, A + 1)`` explains each true action of the bound agent; the
    last column counts latent actions of slots bound to no agent."""
    if lat.codes is None:
        raise ValueError("code meanings need an FSQ bottleneck (discrete codes)")
    labels = colour_labels(lat)
    codes = lat.codes.flatten().numpy()
    cols = np.where(labels >= 0, labels, num_actions)
    counts = np.zeros((num_codes, num_actions + 1), dtype=np.int64)
    np.add.at(counts, (codes, cols), 1)
    return counts


def code_meanings(counts: np.ndarray, action_names: Sequence[str]) -> list[str]:
    """One phrase per code from :func:`code_action_counts`: its majority action and share."""
    out = []
    for row in counts[:, :-1]:
        total = int(row.sum())
        if total == 0:
            out.append("unused by agents")
            continue
        a = int(row.argmax())
        out.append(f"{action_names[a]} {row[a] / total:.0%}, n={total}")
    return out


# -- everything at once --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Views:
    """Images ``(H, W, 3)``, videos ``(t, H, W, 3)`` and JSON-ready numbers of one model."""

    images: dict[str, np.ndarray]
    videos: dict[str, np.ndarray]
    numbers: dict[str, object]


def held_out_windows(cache: CodeCache, window: int, count: int, seed: int) -> CodeBatch:
    """``count`` labelled windows of ``window`` frames drawn without replacement (seeded)."""
    starts = cache.starts(window)
    pick = np.random.default_rng(seed).choice(
        len(starts), size=min(count, len(starts)), replace=False
    )
    return cache.windows(np.sort(starts[pick]), window, labels=True)


def attention_views(
    model: LatentActionModel, tokenizer: Tokenizer, batch: CodeBatch, lat: SlotLatents
) -> tuple[np.ndarray, np.ndarray]:
    """(GIF video ``(t, H, W, 3)``, PNG strip ``(H, W, 3)``) of the first window: frames and
    their slot-attention overlay, with a legend naming the agent each slot holds at frame 0."""
    assert lat.attn is not None
    frames = decode_frames(tokenizer, batch.codes[0])
    overlay = attention_overlay(frames, lat.attn[0])
    names = slot_names(lat, 0)
    rows = [Row("decoded frames", frames), Row("slot attention\n(colour = slot)", overlay)]
    strip = labelled_strip(rows, title=f"slot attention of {model.config.model}")
    legend = attention_legend(names, strip.shape[1])
    video = grid_frames([frames, overlay])
    return video, np.concatenate([strip, legend], axis=0)


def latent_action_views(
    model: LatentActionModel,
    tokenizer: Tokenizer,
    cache: CodeCache,
    cell_px: int,
    token_px: int,
    *,
    window: int = 8,
    windows: int = 128,
    seed: int = 0,
    umap: bool = True,
    max_points: int = 4000,
    predictor: Predictor = "gbt",
    action_names: Sequence[str] = MULTIGRID_ACTION_NAMES,
) -> Views:
    """UMAP, slot attention, correspondence and DCI on ``windows`` held-out windows of ``cache``."""
    batch = held_out_windows(cache, window, windows, seed)
    lat = slot_latents(model, batch, cell_px, token_px)
    kind = model.config.model
    images: dict[str, np.ndarray] = {}
    videos: dict[str, np.ndarray] = {}
    numbers: dict[str, object] = {
        "model": kind,
        "windows": int(batch.codes.shape[0]),
        "window": window,
        "seed": seed,
        "agents": lat.true_actions.shape[-1],
        "factors": int(lat.actions.shape[2]),
        "predictor": predictor,
    }
    if umap:
        images["umap"], numbers["umap"] = _umap_view(lat, kind, max_points, seed, action_names)
    if lat.attn is not None:
        videos["attention"], images["attention"] = attention_views(model, tokenizer, batch, lat)
    images["correspondence"], found = _correspondence_view(lat, kind, predictor, seed)
    numbers.update(found)
    if lat.codes is not None:
        numbers["code_actions"] = _code_actions(
            lat, model.config.bottleneck.num_codes or 1, action_names
        )
    return Views(images, videos, numbers)


def _umap_view(
    lat: SlotLatents, kind: str, max_points: int, seed: int, action_names: Sequence[str]
) -> tuple[np.ndarray, dict[str, object]]:
    """The UMAP figure of the latent actions, coloured by the true action, and its numbers."""
    points, labels, codes = umap_points(lat, max_points, seed)
    if lat.factored:
        what = "one point per (transition, slot); colour = action of the slot's agent"
    else:
        # The joint action has 5^agents classes: too many colours.
        what = "one point per transition; colour = agent 0's action"
    source = "IDM output before the FSQ bottleneck" if lat.codes is not None else "latent action"
    title = f"UMAP of {kind} latent actions ({source})\n{what}"
    figure = umap_figure(points, labels, codes, action_names, title)
    return figure, {"points": len(points), "source": source}


def _correspondence_view(
    lat: SlotLatents, kind: str, predictor: Predictor, seed: int
) -> tuple[np.ndarray, dict[str, object]]:
    """The slot-agent correspondence and DCI figure, and its numbers (``dci``, and
    ``correspondence`` where slots are matched to agents)."""
    agents = lat.true_actions.shape[-1]
    numbers: dict[str, object] = {}
    aligned = dci(lat, aligned=True, predictor=predictor, seed=seed)
    raw = dci(lat, aligned=False, predictor=predictor, seed=seed) if lat.factored else aligned
    dci_numbers: dict[str, object] = {"aligned": aligned.as_dict(), "raw_slot_index": raw.as_dict()}
    if not lat.factored:
        dci_numbers["note"] = (
            "one factor (the scene latent): each agent's importances sum to 1 on it, so "
            "disentanglement is 0 by construction whenever any predictor uses it"
        )
    numbers["dci"] = dci_numbers
    panels = [("DCI importance R, aligned factors", aligned.importance, factor_names(lat, True))]
    if lat.match is not None and lat.attn is not None:
        k = lat.attn.shape[2]
        raw_match = match_fraction(lat.match, k)
        aligned_match = aligned_match_fraction(lat)
        # Within a window, how often each agent stays in the slot bound to it at frame 0.
        keep = np.diag(aligned_match[:agents]).tolist()
        numbers["correspondence"] = {
            "match_fraction_raw": np.round(raw_match, 4).tolist(),
            "match_fraction_aligned": np.round(aligned_match, 4).tolist(),
            "agent_keeps_its_slot": [round(v, 4) for v in keep],
            "slots_ever_matched": int((raw_match.sum(1) > 0).sum()),
        }
        panels = [
            ("agent's slot, raw slot index", raw_match, factor_names(lat, False)),
            ("agent's slot, aligned per window", aligned_match, factor_names(lat, True)),
            *panels,
            ("DCI importance R, raw slot index", raw.importance, factor_names(lat, False)),
        ]

    def fmt(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:.3f}"

    gaps = np.array(aligned.informativeness, float) - np.array(aligned.chance, float)
    informed = float(np.nanmax(gaps)) if np.isfinite(gaps).any() else math.nan
    head = f"{kind}: DCI disentanglement {fmt(aligned.disentanglement)} (aligned)"
    if lat.factored:
        head += f", {fmt(raw.disentanglement)} (raw slot index)"
    # Near chance the importance matrix is fitted noise: say how far above chance it is.
    head += f"; best predictor {fmt(informed)} above chance"
    return correspondence_figure(panels, agents, title=head), numbers


def _code_actions(lat: SlotLatents, count: int, action_names: Sequence[str]) -> dict[str, object]:
    """Which true action each inferred latent code stands for (counts and a one-word meaning)."""
    counts = code_action_counts(lat, count, len(action_names))
    meanings = code_meanings(counts, action_names)
    inferred = np.flatnonzero(counts.sum(1))  # codes inferred at all (big codebooks: few)
    return {
        "columns": [*action_names, "no agent"],
        "codes": count,
        "inferred": {
            str(c): {"counts": counts[c].tolist(), "meaning": meanings[c]} for c in inferred
        },
    }
