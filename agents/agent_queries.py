"""A cloning-policy features extractor that reads each agent's part of the frame on its own.

:class:`agents.bc.CoordCNN` squeezes the whole frame into one vector that every agent's action
head shares; with many agents that vector has to carry every agent's surroundings at once.
:class:`AgentQueryCNN` keeps the per-cell features instead and lets one learned query per agent
attend over them (the agents have fixed colours, so query ``i`` can learn to find agent ``i``
and its goal), then hands SB3 the agents' vectors side by side: ``(b, a * d)``, so that the
policy's action net (a linear layer to the ``a x 5`` logits) reads agent ``i``'s actions mostly
from its own part.

Shapes: frames float ``(b, c, H, W)`` in [0, 1] (SB3's preprocessing); cell features
``(b, n, d)`` with ``n = (H / patch) * (W / patch)``; agent vectors ``(b, a, d)``.
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import torch
from einops import rearrange, repeat
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents.cells import check_patch, coordinate_planes


class AgentQueryCNN(BaseFeaturesExtractor):
    """Cell features from a patch CNN with coordinate planes, then ``rounds`` of cross-attention
    from ``num_agents`` learned queries over the cells (keys and values shared by the rounds;
    each round followed by an MLP, both residual, pre-LayerNorm).

    Args:
        observation_space: channel-first image space ``(c, H, W)``.
        num_agents: agents (one query each).
        channels: the patch conv's channels, then one 3x3 conv per further entry.
        patch: kernel and stride of the first conv (the env's tile size: one feature per cell).
        width: ``d``, the width of a cell feature and of an agent vector.
        heads: attention heads.
        rounds: cross-attention rounds.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        num_agents: int,
        channels: tuple[int, ...] = (32, 32),
        patch: int = 4,
        width: int = 64,
        heads: int = 4,
        rounds: int = 2,
    ) -> None:
        super().__init__(observation_space, num_agents * width)
        c, h, w = observation_space.shape
        check_patch(h, w, patch)
        if num_agents < 1 or rounds < 1 or width % heads:
            raise ValueError(
                f"need num_agents >= 1, rounds >= 1 and width divisible by heads, got "
                f"{num_agents}, {rounds}, {width} and {heads}"
            )
        self.register_buffer("coords", coordinate_planes(h, w), persistent=False)
        layers: list[nn.Module] = [nn.Conv2d(c + 2, channels[0], patch, stride=patch)]
        for prev, ch in itertools.pairwise(channels):
            layers += [nn.ReLU(), nn.Conv2d(prev, ch, 3, padding=1)]
        self.cnn = nn.Sequential(*layers, nn.ReLU())
        self.to_cells = nn.Linear(channels[-1] + 2, width)  # + the cell's coordinates
        self.queries = nn.Parameter(torch.randn(num_agents, width) * width**-0.5)
        # Keys and values are projected once and shared by every round (the cells are many,
        # the queries few: the projections of the cells are most of the cost).
        self.to_kv = nn.Linear(width, 2 * width)
        self.to_q = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width)) for _ in range(rounds)
        )
        self.out = nn.ModuleList(nn.Linear(width, width) for _ in range(rounds))
        self.mlp = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width),
                nn.Linear(width, 2 * width),
                nn.ReLU(),
                nn.Linear(2 * width, width),
            )
            for _ in range(rounds)
        )
        self.cell_norm = nn.LayerNorm(width)
        self.patch, self.heads = patch, heads

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        b = observations.shape[0]
        coords = repeat(self.coords, "two h w -> b two h w", b=b)
        grid = self.cnn(torch.cat([observations, coords], dim=1))
        cell_xy = nn.functional.avg_pool2d(coords, self.patch)
        cells = rearrange(torch.cat([grid, cell_xy], dim=1), "b c gh gw -> b (gh gw) c")
        cells = self.cell_norm(self.to_cells(cells))
        k, v = rearrange(self.to_kv(cells), "b n (two h e) -> two b h n e", two=2, h=self.heads)
        agents = repeat(self.queries, "a d -> b a d", b=b)
        for to_q, out, mlp in zip(self.to_q, self.out, self.mlp, strict=True):
            q = rearrange(to_q(agents), "b a (h e) -> b h a e", h=self.heads)
            read = nn.functional.scaled_dot_product_attention(q, k, v)
            agents = agents + out(rearrange(read, "b h a e -> b a (h e)"))
            agents = agents + mlp(agents)
        return rearrange(agents, "b a d -> b (a d)")
