"""Feature stacks: all layers of a region/year on its grid, and named feature sets.

The stack holds float32 bands whose descriptions are the layer names, plus ``valid``
(1 where every layer is finite). Indices: ``ndsi = (green - swir1) / (green + swir1)``,
``ndwi = (green - nir) / (green + nir)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from glaciermap.errors import MissingLayerError
from glaciermap.grid import RegionGrid, check_same_grid, write_raster
from glaciermap.io import PathLike, band_names, read_bands
from glaciermap.optical import COMMON_NAMES
from glaciermap.sar import LAYER_COHERENCE, LAYER_COPOL_DB, LAYER_CROSSPOL_DB

log = logging.getLogger(__name__)

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "rgbn": ("blue", "green", "red", "nir"),
    "optical": (*COMMON_NAMES, "ndsi", "ndwi"),
    "optical_dem": (*COMMON_NAMES, "ndsi", "ndwi", "elevation", "slope"),
    "optical_dem_sar": (
        *COMMON_NAMES,
        "ndsi",
        "ndwi",
        "elevation",
        "slope",
        LAYER_COPOL_DB,
        LAYER_CROSSPOL_DB,
        LAYER_COHERENCE,
    ),
}
VALID = "valid"


def normalized_difference(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """(a - b) / (a + b), NaN where the sum is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        s = a + b
        return np.where(s != 0, (a - b) / s, np.nan).astype(np.float32)


def build_feature_stack(
    grid_path: PathLike,
    optical: PathLike,
    dem: PathLike,
    slope: PathLike,
    dest: PathLike,
    backscatter: PathLike | None = None,
    coherence: PathLike | None = None,
) -> list[str]:
    """Stack all layers of a region/year; returns the layer names written."""
    grid = RegionGrid.load(grid_path)
    inputs = [p for p in (optical, dem, slope, backscatter, coherence) if p is not None]
    check_same_grid(grid, *inputs)
    present = [b for b in band_names(optical) if b in COMMON_NAMES]
    opt, _ = read_bands(optical, present)
    layers: list[NDArray[np.float32]] = list(opt)
    names: list[str] = list(present)
    band = dict(zip(present, opt, strict=True))
    if "swir1" in band:
        layers.append(normalized_difference(band["green"], band["swir1"]))
        names.append("ndsi")
    layers.append(normalized_difference(band["green"], band["nir"]))
    names.append("ndwi")
    for path, wanted in ((dem, ["elevation"]), (slope, ["slope"])):
        arr, _ = read_bands(path, wanted)
        layers += list(arr)
        names += wanted
    if backscatter is not None:
        arr, bnames = read_bands(backscatter)
        layers += list(arr)
        names += bnames
    if coherence is not None:
        arr, cnames = read_bands(coherence)
        layers += list(arr)
        names += cnames
    stack = np.stack(layers).astype(np.float32)
    valid = np.all(np.isfinite(stack), axis=0).astype(np.float32)
    log.info("features: %s; valid %.1f%%", names, 100 * valid.mean())
    write_raster(dest, np.concatenate([stack, valid[None]]), grid, [*names, VALID], nodata=np.nan)
    return names


def feature_indices(
    available: Sequence[str], featureset: str, source: str = "the feature stack"
) -> list[int]:
    """Positions of a feature set's layers in ``available``; a clear error if one is absent."""
    if featureset not in FEATURE_SETS:
        raise MissingLayerError(
            f"feature set {featureset!r} unknown; choose one of {sorted(FEATURE_SETS)}"
        )
    wanted = FEATURE_SETS[featureset]
    missing = [w for w in wanted if w not in available]
    if missing:
        raise MissingLayerError(
            f"{source} has no layer(s) {missing} needed by feature set {featureset!r} "
            f"(it has {list(available)}); choose a feature set without them for this region/year"
        )
    return [list(available).index(w) for w in wanted]


def stack_layers(path: PathLike) -> list[str]:
    """Layer names of a feature stack, without ``valid``."""
    return [b for b in band_names(path) if b != VALID]
