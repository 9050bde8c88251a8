"""Errors of the data layer. Each message names the problem and says how to fix it."""

from __future__ import annotations


class DatasetError(Exception):
    """Base class of every data-layer error."""


class DatasetExistsError(DatasetError, FileExistsError):
    """A dataset with this id already exists and ``overwrite`` was not set."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No dataset with this id under the root."""


class DatasetIdError(DatasetError, ValueError):
    """A dataset id that is not ``namespace/name-vN``."""


class DatasetCorruptError(DatasetError, OSError):
    """A dataset's files cannot be read (truncated, half-written or not a latentrl dataset)."""


class FrameShapeMismatchError(DatasetError, ValueError):
    """Datasets loaded together have different frame shapes (or agent counts)."""
