"""Error hierarchy: every class also inherits the builtin it resembles.

A message names the file, says what is wrong and what to do, on one line.
"""

from __future__ import annotations


class GlacierMapError(Exception):
    """Base class of all glaciermap errors."""


class InputDataError(GlacierMapError, ValueError):
    """An input file exists but its content cannot be used."""


class MissingInputError(GlacierMapError, FileNotFoundError):
    """An expected input file or directory is absent."""


class GridMismatchError(InputDataError):
    """Two rasters that must share the region grid do not."""


class MissingLayerError(InputDataError, KeyError):
    """A feature set asks for a layer that a region/year does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ConfigError(GlacierMapError, ValueError):
    """The configuration is inconsistent."""


class OutputError(GlacierMapError, OSError):
    """An output cannot be written: its folder is not writable or the disk is full."""
