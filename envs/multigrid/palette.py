"""Colours of the MultiGrid world: minigrid's floor and wall plus 16 agent colours.

minigrid has six named colours, too few for 16 agents, and two of them (blue, purple) are dark
against its black floor. The agent palette below was chosen by greedy farthest-point selection
in CIELAB over an RGB lattice, keeping only colours with lightness L* >= 55 so that every agent
stands out against the black floor, and maximising the smallest distance to the floor, to the
grey wall (100, 100, 100) and to every colour already chosen. Its smallest pairwise CIE76
distance is about 39 and its smallest distance to floor or wall about 43 (a just noticeable
difference is about 2.3); the order is the selection order, so the first agents of a small
team get the most distinct colours.
"""

from __future__ import annotations

import numpy as np

MAX_AGENTS = 16
"""Largest team the palette (and therefore the environment) supports."""

FLOOR_COLOR = (0, 0, 0)
"""RGB of an empty cell: minigrid draws no floor object, so the tile stays black."""

WALL_COLOR = (100, 100, 100)
"""RGB of a wall: minigrid's ``COLORS["grey"]``, the colour of ``minigrid...Wall``."""

GRID_LINE_COLOR = (100, 100, 100)
"""RGB of minigrid's grid lines along the top and left edge of every tile."""

AGENT_COLOR_NAMES: tuple[str, ...] = (
    "red",
    "green",
    "magenta",
    "yellow",
    "aquamarine",
    "azure",
    "pink",
    "white",
    "leaf",
    "sky",
    "copper",
    "lavender",
    "lime",
    "violet",
    "spring",
    "teal",
)
"""Human-readable name of each agent colour, index-aligned with ``AGENT_COLORS``."""

AGENT_COLORS: np.ndarray = np.array(
    [
        (255, 45, 0),
        (0, 255, 0),
        (225, 0, 255),
        (255, 225, 90),
        (0, 255, 210),
        (0, 135, 255),
        (255, 75, 150),
        (255, 255, 240),
        (75, 150, 45),
        (0, 210, 255),
        (210, 120, 75),
        (240, 180, 255),
        (210, 255, 0),
        (180, 105, 240),
        (0, 240, 120),
        (15, 150, 120),
    ],
    dtype=np.uint8,
)
"""uint8 ``(MAX_AGENTS, 3)``: RGB of agent ``i`` and of its goal cell."""
AGENT_COLORS.setflags(write=False)
