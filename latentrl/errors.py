"""The error of run artifacts: a file latentrl wrote (run folder, checkpoint, model folder).

Data-layer errors live in :mod:`latentrl.data.errors`. An :class:`ArtifactError` message names
the file, what was expected, what was found and the fix.
"""

from __future__ import annotations


class ArtifactError(ValueError):
    """A run-folder file is damaged, foreign, or holds values outside sane bounds."""
