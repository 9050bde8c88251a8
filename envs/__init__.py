"""Environments that produce action-free multi-entity video: MultiGrid and Procgen.

Importing ``envs`` registers every environment id with Gymnasium (as minigrid does); the
registrations name entry points by string, so no simulator is loaded until ``gym.make``.
Use ``gymnasium.register_envs(envs)`` to make that import explicit to linters.
"""

from envs.multigrid.registration import register_multigrid_envs
from envs.procgen import register_procgen_envs

register_multigrid_envs()
register_procgen_envs()
