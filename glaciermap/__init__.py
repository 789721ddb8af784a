"""glaciermap: glacier outlines from satellite scenes.

The package holds all the logic of the workflow; it never imports snakemake. The notebook
API (:mod:`glaciermap.api`: ``open_raster``, ``open_features``, ``predict``, ``outlines``,
``read_outlines``, ``changes``) is importable from here, loaded on first use so that
``import glaciermap`` stays light.
"""

from typing import Any

__version__ = "0.7.0"

_API = ("open_raster", "open_features", "predict", "outlines", "read_outlines", "changes")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from glaciermap import api

        return getattr(api, name)
    raise AttributeError(f"module 'glaciermap' has no attribute {name!r}")
