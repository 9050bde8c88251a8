"""Inverse and forward dynamics: factored per slot (FLAM) or one action per scene (LAM family).

Both follow Genie's spatio-temporal pattern (FLAM sec. 4.2): a spatial block mixes the states of
one frame, a temporal block compares a state with its next value (IDM) or reads the latent action
(FDM). Shapes: states ``(b, t, k, d)`` with ``k`` slots or tokens; latent actions
``(b, t - 1, k', d_a)`` with ``k' = k`` (factored) or ``k' = 1`` (scene).
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from latentrl.nn.blocks import CrossBlock, SelfBlock
from latentrl.quantize import BottleneckConfig, BottleneckOutput, LatentBottleneck


class _SpatioTemporal(nn.Module):
    """``blocks`` pairs of (self-attention over the set, per-element cross-attention)."""

    def __init__(self, dim: int, heads: int, blocks: int) -> None:
        super().__init__()
        self.spatial = nn.ModuleList(SelfBlock(dim, heads) for _ in range(blocks))
        self.temporal = nn.ModuleList(CrossBlock(dim, heads) for _ in range(blocks))


class FactoredIDM(_SpatioTemporal):
    """``a_t^i = IDM(s_t^{1:K}, s_{t+1}^i)``: one latent action per slot, shared weights.

    With ``motion_dim`` > 0 the query ``s_{t+1}^i`` also carries an embedding of per-slot motion
    features ``(b, t - 1, k, motion_dim)`` (positional slots: centroid displacement and position).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        blocks: int,
        bottleneck: BottleneckConfig,
        motion_dim: int = 0,
    ) -> None:
        super().__init__(dim, heads, blocks)
        self.motion_in = nn.Linear(motion_dim, dim) if motion_dim else None
        self.bottleneck = LatentBottleneck(dim, bottleneck)

    def forward(self, states: torch.Tensor, motion: torch.Tensor | None = None) -> BottleneckOutput:
        b, t = states.shape[:2]
        cur = rearrange(states[:, :-1], "b t k d -> (b t) k d")
        nxt = rearrange(states[:, 1:], "b t k d -> (b t k) 1 d")
        q = nxt
        if self.motion_in is not None:
            if motion is None:
                raise ValueError("this IDM was built with motion features: pass them")
            q = q + rearrange(self.motion_in(motion), "b t k d -> (b t k) 1 d")
        for spatial, temporal in zip(self.spatial, self.temporal, strict=True):
            cur = spatial(cur)
            kv = torch.cat([rearrange(cur, "bt k d -> (bt k) 1 d"), nxt], dim=1)
            q = temporal(q, kv)
        out = self.bottleneck(rearrange(q, "(b t k) 1 d -> b t k d", b=b, t=t - 1))
        return out


class FactoredFDM(_SpatioTemporal):
    """``s^_{t+1}^i = FDM(s_t^{1:K}, a_t^i)``: each slot reads only its own latent action."""

    def __init__(self, dim: int, heads: int, blocks: int, action_dim: int) -> None:
        super().__init__(dim, heads, blocks)
        self.action_in = nn.Linear(action_dim, dim)

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """States ``(B, k, d)``, actions ``(B, k, d_a)`` -> next states ``(B, k, d)``."""
        k = states.shape[1]
        act = rearrange(self.action_in(actions), "B k d -> (B k) 1 d")
        h = states
        for spatial, temporal in zip(self.spatial, self.temporal, strict=True):
            h = spatial(h)
            h = rearrange(
                temporal(rearrange(h, "B k d -> (B k) 1 d"), act), "(B k) 1 d -> B k d", k=k
            )
        return h


class _ScenePooling(nn.Module):
    """What every scene IDM ends with: ``positions`` learned queries pool the per-token change
    features ``(bt, n, d)``, and the pooled vectors are quantised together into the scene latent
    ``(b, t - 1, 1, positions * d -> d_a)``. A mixin (not a submodule), so the weights keep the
    names ``pool_query``, ``pool``, ``bottleneck`` that saved runs hold."""

    def _build_pool(
        self, dim: int, heads: int, positions: int, bottleneck: BottleneckConfig
    ) -> None:
        if positions < 1:
            raise ValueError(f"a scene latent needs at least one code position, got {positions}")
        self.positions = positions
        self.pool_query = nn.Parameter(torch.randn(1, positions, dim) * 0.02)
        self.pool = CrossBlock(dim, heads)
        self.bottleneck = LatentBottleneck(positions * dim, bottleneck)

    def _pool(self, changes: torch.Tensor, b: int, t: int) -> BottleneckOutput:
        query = repeat(self.pool_query, "1 m d -> bt m d", bt=changes.shape[0])
        pooled = self.pool(query, changes)
        return self.bottleneck(rearrange(pooled, "(b t) m d -> b t 1 (m d)", b=b, t=t - 1))


class SceneIDM(_SpatioTemporal, _ScenePooling):
    """One latent action per transition for the whole scene (LAM, OC+LAM).

    ``positions`` learned queries pool the per-token changes (Genie's and LAPO's several code
    positions): each can attend to a different part of the scene, e.g. one agent's move. The
    pooled vectors are concatenated and quantised together, so the scene latent ``(.., 1, d_a)``
    holds ``positions`` blocks of ``d_a / positions`` FSQ values. With ``delta`` each token's
    change features are taken relative to those of the same token unchanged.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        blocks: int,
        bottleneck: BottleneckConfig,
        positions: int = 1,
        delta: bool = False,
    ) -> None:
        super().__init__(dim, heads, blocks)
        self.delta = delta
        self._build_pool(dim, heads, positions, bottleneck)

    def forward(self, states: torch.Tensor) -> BottleneckOutput:
        b, t, k = states.shape[:3]
        cur = rearrange(states[:, :-1], "b t k d -> (b t) k d")
        nxt = rearrange(states[:, 1:], "b t k d -> (b t k) 1 d")
        # With ``delta``, the same features had every token stayed as it was (frame t for
        # t+1): the difference is exactly zero on unchanged tokens, so from the first step the
        # pooled latent varies with what moved, not with where everything is (the forward model
        # already has that from frame t).
        still = rearrange(states[:, :-1], "b t k d -> (b t k) 1 d") if self.delta else None
        q, q_still = nxt, still
        for spatial, temporal in zip(self.spatial, self.temporal, strict=True):
            cur = spatial(cur)
            flat = rearrange(cur, "bt k d -> (bt k) 1 d")
            q = temporal(q, torch.cat([flat, nxt], dim=1))
            if still is not None:
                q_still = temporal(q_still, torch.cat([flat, still], dim=1))
        if q_still is not None:
            q = q - q_still
        return self._pool(rearrange(q, "(bt k) 1 d -> bt k d", k=k), b, t)


class ConvSceneIDM(_ScenePooling):
    """One scene latent action from convolutions over the token grid (LAM with ``idm_conv``).

    LAPO's inverse dynamics is a CNN over stacked frames; here three 3x3 convolutions read each
    token's content at t beside its change to t+1, on token features *without* absolute
    positions. The features are translation-equivariant (up to the walls), and the learned
    queries of :class:`SceneIDM` pool them by content, so the latent can say that the red agent
    stepped left but hardly on which cell: the attention IDM, which sees positions, names where
    the agents end up instead (docs/research/strong_lam.md). With ``delta`` the features of the
    same tokens unchanged are subtracted, exactly zero away from every change.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        grid: int,
        bottleneck: BottleneckConfig,
        positions: int = 1,
        delta: bool = False,
    ) -> None:
        super().__init__()
        self.grid, self.delta = grid, delta
        self.convs = nn.Sequential(
            nn.Conv2d(2 * dim, dim, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1),
        )
        self._build_pool(dim, heads, positions, bottleneck)

    def _features(self, cur: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        x = rearrange(torch.cat([cur, change], -1), "bt (h w) d -> bt d h w", h=self.grid)
        return rearrange(self.convs(x), "bt d h w -> bt (h w) d")

    def forward(self, content: torch.Tensor) -> BottleneckOutput:
        """Token content ``(b, t, n, d)`` (no positions) -> the scene latent ``(b, t-1, 1, d_a)``."""
        b, t = content.shape[:2]
        cur = rearrange(content[:, :-1], "b t n d -> (b t) n d")
        nxt = rearrange(content[:, 1:], "b t n d -> (b t) n d")
        changes = self._features(cur, nxt - cur)
        if self.delta:
            changes = changes - self._features(cur, torch.zeros_like(cur))
        return self._pool(changes, b, t)


class SceneFDM(_SpatioTemporal):
    """Next states of every slot/token from all current states and one scene action.

    With ``positions`` > 1 the scene action is read as that many blocks (see :class:`SceneIDM`),
    each embedded as its own context token with a learned position, so every state can attend
    to the block that concerns it.
    """

    def __init__(
        self, dim: int, heads: int, blocks: int, action_dim: int, positions: int = 1
    ) -> None:
        super().__init__(dim, heads, blocks)
        if action_dim % positions:
            raise ValueError(
                f"a scene action of {action_dim} values does not split into {positions} positions"
            )
        self.positions = positions
        self.action_in = nn.Linear(action_dim // positions, dim)
        self.action_pos = (
            nn.Parameter(torch.randn(positions, dim) * 0.02) if positions > 1 else None
        )

    def forward(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """States ``(B, k, d)``, actions ``(B, 1, d_a)`` -> next states ``(B, k, d)``."""
        act = self.action_in(rearrange(actions, "B 1 (m a) -> B m a", m=self.positions))
        if self.action_pos is not None:
            act = act + self.action_pos
        h = states
        for spatial, temporal in zip(self.spatial, self.temporal, strict=True):
            h = temporal(spatial(h), act)
        return h
