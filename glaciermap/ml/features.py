"""Feature stacks: all layers of a region/year on its grid, and named feature sets.

The stack holds float32 bands whose descriptions are the layer names, plus ``valid``
(1 where every layer is finite). Base layers come first: the optical bands present
(common names, in the optical file's order), ``elevation`` and ``slope`` when a DEM is given,
then the SAR layers given. Derived layers follow (:data:`DERIVED`, those the present bands
allow, or the ``derived`` selection):

* ``ndsi = (green - swir1) / (green + swir1)``, ``ndwi = (green - nir) / (green + nir)``
  (NaN where the sum is 0);
* ``brightness``: mean of the present blue, green, red and nir;
* ``ratio_nir_red``, ``ratio_blue_red``, ``ratio_swir1_red``: ``(a + eps) / (b + eps)`` with
  ``eps = RATIO_EPS = 0.01`` reflectance, clipped to ``[0, RATIO_MAX = 20]``. The offset keeps
  ratios of dark pixels (cast shadow, water, nodata-adjacent noise, small negative surface
  reflectance) from exploding: it is below the reflectance of any lit surface and about the
  noise of dark ones, so it changes bright-target ratios by < 2 %;
* ``brightness_mean_k``, ``brightness_std_k``: mean and (population) standard deviation of
  ``brightness`` over the ``k x k`` window centred on a pixel (``k = texture_px``, odd),
  over the finite pixels of the window inside the region (so nodata and the region edge
  shrink the window instead of spreading NaN); NaN where ``brightness`` itself is NaN.

The stack is written block by block (:func:`glaciermap.core.reproject.block_windows`) with a halo of
``texture_px // 2`` pixels for the texture, so memory depends on the block size, not on the
region, and the result does not depend on the block size.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import ConfigError, InputDataError, MissingLayerError
from glaciermap.core.grid import RegionGrid, check_same_grid
from glaciermap.core.io import (
    STREAM_CACHE_MB,
    PathLike,
    band_names,
    gdal_cache,
    names_unreadable_rasters,
    open_raster,
)
from glaciermap.core.raster import grid_writer, tile_grid
from glaciermap.core.reproject import block_windows
from glaciermap.ingest.names import (
    LAYER_COHERENCE,
    LAYER_COPOL_DB,
    LAYER_CROSSPOL_DB,
    layer_unit,
)
from glaciermap.ingest.optical import COMMON_NAMES

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
# Input kinds (rules/common.smk feature_inputs) each feature set needs.
VALID = "valid"


BRIGHTNESS_BANDS = ("blue", "green", "red", "nir")
RATIO_EPS = 0.01
RATIO_MAX = 20.0
DEFAULT_TEXTURE_PX = 5
TEXTURE = ("brightness_mean", "brightness_std")
# Derived layers (texture ones without their ``_k`` suffix) and the optical bands each needs;
# brightness and texture need at least one of BRIGHTNESS_BANDS and use all of those present.
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "ndsi": ("green", "swir1"),
    "ndwi": ("green", "nir"),
    "brightness": BRIGHTNESS_BANDS,
    "ratio_nir_red": ("nir", "red"),
    "ratio_blue_red": ("blue", "red"),
    "ratio_swir1_red": ("swir1", "red"),
    "brightness_mean": BRIGHTNESS_BANDS,
    "brightness_std": BRIGHTNESS_BANDS,
}
DERIVED = tuple(DERIVED_INPUTS)
_RATIOS = {k: v for k, v in DERIVED_INPUTS.items() if k.startswith("ratio_")}
_FROM_BRIGHTNESS = frozenset({"brightness", *TEXTURE})
_TEXTURE_NAME = re.compile(r"^(brightness_(?:mean|std))_(\d+)$")

Array = NDArray[np.float32]


def normalized_difference(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """(a - b) / (a + b), NaN where the sum is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        s = a + b
        return np.where(s != 0, (a - b) / s, np.nan).astype(np.float32)


def band_ratio(
    a: NDArray[np.floating],
    b: NDArray[np.floating],
    eps: float = RATIO_EPS,
    max_ratio: float = RATIO_MAX,
) -> NDArray[np.float32]:
    """``(a + eps) / (b + eps)`` clipped to ``[0, max_ratio]``; NaN stays NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.astype(np.float64) + eps) / (b.astype(np.float64) + eps)
    return np.clip(r, 0.0, max_ratio).astype(np.float32)


def brightness(bands: Mapping[str, NDArray[np.floating]]) -> NDArray[np.float32]:
    """Mean of the present blue, green, red and nir (NaN where one of them is NaN)."""
    present = [bands[b].astype(np.float64) for b in BRIGHTNESS_BANDS if b in bands]
    if not present:
        raise InputDataError(f"brightness needs one of {list(BRIGHTNESS_BANDS)}")
    return (sum(present[1:], present[0]) / len(present)).astype(np.float32)


def _box_sum(a: NDArray[np.float64], half: int) -> NDArray[np.float64]:
    """Sum over the ``(2 half + 1)^2`` window around each pixel, zeros outside the array.

    Separable, by shifted adds in a fixed order: a pixel's sum is the same sequence of
    additions whichever block around it the array is, so blocks give identical results.
    """
    rows, cols = a.shape
    k = 2 * half + 1
    p = np.pad(a, half)
    across = np.zeros((rows + 2 * half, cols))
    for d in range(k):
        across += p[:, d : d + cols]
    out = np.zeros((rows, cols))
    for d in range(k):
        out += across[d : d + rows]
    return out


def local_mean_std(x: NDArray[np.floating], k: int) -> tuple[Array, Array]:
    """Mean and population standard deviation over the ``k x k`` window around each pixel.

    Only finite pixels inside the array count (nodata and the array's edge shrink the window);
    NaN where ``x`` is not finite. Computed in float64 from window sums.
    """
    check_texture_px(k)
    finite = np.isfinite(x)
    v = np.where(finite, x, 0.0).astype(np.float64)
    half = k // 2
    n = _box_sum(finite.astype(np.float64), half)
    s1 = _box_sum(v, half)
    s2 = _box_sum(v * v, half)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
    mean[~finite] = np.nan
    var[~finite] = np.nan
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


def check_texture_px(k: int) -> None:
    """Raise :class:`ConfigError` unless ``k`` (``features: texture_px``) is an odd int >= 3."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0:
        raise ConfigError(
            f"features: texture_px {k!r} is not an odd integer >= 3; set it to 3, 5, 7, ..."
        )


def derived_layer_name(key: str, texture_px: int = DEFAULT_TEXTURE_PX) -> str:
    """Layer name of a derived layer: texture layers get the window size, ``_k``."""
    return f"{key}_{texture_px}" if key in TEXTURE else key


def _derived_key(name: str) -> str | None:
    """The :data:`DERIVED` key of a layer name (``brightness_mean_5`` -> ``brightness_mean``)."""
    if name in DERIVED_INPUTS and name not in TEXTURE:
        return name
    m = _TEXTURE_NAME.match(name)
    return m.group(1) if m else None


def computable(key: str, bands: Sequence[str]) -> bool:
    """Whether a derived layer can be computed from optical ``bands``."""
    needs = DERIVED_INPUTS[key]
    if key in _FROM_BRIGHTNESS:
        return any(b in bands for b in needs)
    return all(b in bands for b in needs)


def select_derived(
    bands: Sequence[str],
    derived: Sequence[str] | None = None,
    texture_px: int = DEFAULT_TEXTURE_PX,
) -> list[str]:
    """Keys (:data:`DERIVED` order) of the derived layers to write for optical ``bands``.

    ``derived`` lists keys or layer names (``brightness_mean`` or ``brightness_mean_5``);
    None selects all. Layers the bands do not allow are left out (logged): one configuration
    serves 4- and 6-band epochs.
    """
    if derived is None:
        wanted = set(DERIVED)
    else:
        wanted = set()
        for name in derived:
            key = name if name in DERIVED_INPUTS else _derived_key(name)
            if key is None or (key in TEXTURE and name not in (key, f"{key}_{texture_px}")):
                raise ConfigError(
                    f"features: derived: {name!r} is not a derived layer; choose among "
                    f"{list(DERIVED)} (texture ones with or without _{texture_px})"
                )
            wanted.add(key)
    keys = [k for k in DERIVED if k in wanted and computable(k, bands)]
    skipped = sorted(wanted - set(keys), key=DERIVED.index)
    if skipped:
        log.info("features: no %s (optical bands %s)", skipped, list(bands))
    return keys


def _compute_derived(
    bands: Mapping[str, Array], keys: Sequence[str], texture_px: int, core: tuple[slice, slice]
) -> list[Array]:
    """Derived layers of ``keys`` on ``core`` of the (haloed) band arrays."""
    out: dict[str, Array] = {}
    core_bands = {b: a[core] for b, a in bands.items()}
    if "ndsi" in keys:
        out["ndsi"] = normalized_difference(core_bands["green"], core_bands["swir1"])
    if "ndwi" in keys:
        out["ndwi"] = normalized_difference(core_bands["green"], core_bands["nir"])
    if any(k in keys for k in ("brightness", *TEXTURE)):
        bright = brightness(bands)
        out["brightness"] = bright[core]
        if any(k in keys for k in TEXTURE):
            mean, std = local_mean_std(bright, texture_px)
            out["brightness_mean"], out["brightness_std"] = mean[core], std[core]
    for key, (a, b) in _RATIOS.items():
        if key in keys:
            out[key] = band_ratio(core_bands[a], core_bands[b])
    return [out[k] for k in keys]


def _band_indexes(
    src: Any, path: PathLike, wanted: Sequence[str] | None
) -> tuple[list[int], list[str]]:
    names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
    wanted = list(names if wanted is None else wanted)
    missing = [n for n in wanted if n not in names]
    if missing:
        raise InputDataError(f"{path}: has no band(s) {missing}; it has {names}")
    return [names.index(n) + 1 for n in wanted], wanted


def _read(src: Any, indexes: Sequence[int], win: Window) -> Array:
    """Bands of a window as float32; nodata and masked pixels -> NaN."""
    data = src.read(list(indexes), window=win, masked=True).astype(np.float32)
    return np.ma.filled(data, np.nan).astype(np.float32)


@names_unreadable_rasters
def build_feature_stack(
    grid_path: PathLike,
    optical: PathLike,
    dem: PathLike | None = None,
    slope: PathLike | None = None,
    dest: PathLike | None = None,
    backscatter: PathLike | None = None,
    coherence: PathLike | None = None,
    derived: Sequence[str] | None = None,
    texture_px: int = DEFAULT_TEXTURE_PX,
    block: int = 1024,
    cache_mb: int = STREAM_CACHE_MB,
    tile: Window | None = None,
) -> list[str]:
    """Stack all layers of a region/year into ``dest``; returns the layer names written.

    ``tile``: write only this window of the region grid (a processing tile) into ``dest``,
    on the tile's part of the grid; the texture's halo is read from the region's inputs
    beyond the tile, so a mosaic of tiles equals the whole-grid stack (no seams).

    ``dem``/``slope`` None: no ``elevation``/``slope`` layers (a region without DEM).
    ``derived``: derived layers to write (:func:`select_derived`; None = all the optical bands
    allow). ``texture_px``: side of the brightness texture window. ``block``: side of the
    blocks computed and written at once (a multiple of the 256 px GeoTIFF tiles); peak memory
    is about ``(layers + 10) * 4 * (block + texture_px)^2`` bytes plus ``cache_mb`` of GDAL
    cache, whatever the region size. The result does not depend on ``block``. The cache only
    has to keep the source blocks a window's halo shares with the window before (one row of
    256 px blocks across a tile of all inputs, ~16 MB for 2048 px tiles of 13 layers, the
    same in pixels at 10 and 30 m); more holds blocks of neighbouring tiles that are not
    read again, which made the peak grow with the number of neighbours (a 2048 px tile:
    520 MB alone, 600 MB inside a 4 x 4 region with 256 MB; 416 and 435 MB with 64 MB, as
    fast).

    Why the defaults hold across resolutions and sensors: the 5 x 5 texture spans 50 m at
    10 m and 150 m at 30 m, in both cases larger than a crevasse field's or debris cover's
    surface roughness and smaller than glaciers a 10-30 m map can resolve (the smallest
    inventory glaciers, 0.01 km2, are 100 m across), so it measures surface roughness and
    local contrast at glacier margins instead of smoothing over whole glaciers. All derived
    layers are ratios or means of reflectance, free of sensor gain, and brightness and the
    visible/NIR ratios use only blue, green, red and nir, which 4-band (Landsat 7 RGBN-like)
    and 6-band (Sentinel-2, Landsat 8) data both have; the SWIR ones (ndsi, ratio_swir1_red)
    are written only where swir1 exists, so one ``derived: null`` serves both band sets.
    """
    if dest is None:
        raise TypeError("build_feature_stack: dest (the output path) is required")
    if (dem is None) != (slope is None):
        raise InputDataError(
            f"feature stack {dest}: dem {dem} and slope {slope} go together; give both or neither"
        )
    check_texture_px(texture_px)
    if block < 1:
        raise ConfigError(f"feature stack block size {block} must be positive")
    grid = RegionGrid.load(grid_path)
    inputs = [p for p in (optical, dem, slope, backscatter, coherence) if p is not None]
    check_same_grid(grid, *inputs)
    present = [b for b in band_names(optical) if b in COMMON_NAMES]
    if not present:
        raise InputDataError(
            f"{optical}: no band named {list(COMMON_NAMES)} (it has {band_names(optical)}); "
            "rebuild it with the optical step"
        )
    keys = select_derived(present, derived, texture_px)
    halo = texture_px // 2 if any(k in keys for k in TEXTURE) else 0
    with contextlib.ExitStack() as stack, gdal_cache(cache_mb):
        opt_src = stack.enter_context(open_raster(optical))
        opt_idx, _ = _band_indexes(opt_src, optical, present)
        others: list[tuple[Any, list[int]]] = []
        names = list(present)
        for path, wanted in (
            (dem, ["elevation"]),
            (slope, ["slope"]),
            (backscatter, None),
            (coherence, None),
        ):
            if path is None:
                continue
            src = stack.enter_context(open_raster(path))
            idx, got = _band_indexes(src, path, wanted)
            others.append((src, idx))
            names += got
        names += [derived_layer_name(k, texture_px) for k in keys]
        out_grid = grid if tile is None else tile_grid(grid, tile)
        r_off, c_off = (0, 0) if tile is None else (int(tile.row_off), int(tile.col_off))
        windows = list(block_windows(out_grid, block))
        n_valid = 0
        log.info(
            "features: %s in %d block(s) of %d px (texture %d px)",
            names,
            len(windows),
            block,
            texture_px,
        )
        layers = [*names, VALID]
        with grid_writer(
            dest,
            out_grid,
            layers,
            "float32",
            np.nan,
            tags={"texture_px": str(texture_px), "ratio_eps": str(RATIO_EPS)},
            units=[layer_unit(n) for n in layers],
        ) as dst:
            for n, win in enumerate(windows, start=1):
                on_region = Window(win.col_off + c_off, win.row_off + r_off, win.width, win.height)
                data = _stack_block(
                    grid, on_region, halo, opt_src, opt_idx, present, others, keys, texture_px
                )
                n_valid += int(data[-1].sum())
                dst.write(data, window=win)
                if len(windows) > 1:
                    log.info(
                        "features: block %d/%d (rows %d-%d, cols %d-%d)",
                        n,
                        len(windows),
                        win.row_off,
                        win.row_off + win.height,
                        win.col_off,
                        win.col_off + win.width,
                    )
    log.info("features: valid %.1f%%", 100 * n_valid / max(1, out_grid.width * out_grid.height))
    return names


def _stack_block(
    grid: RegionGrid,
    win: Window,
    halo: int,
    opt_src: Any,
    opt_idx: Sequence[int],
    present: Sequence[str],
    others: Sequence[tuple[Any, Sequence[int]]],
    keys: Sequence[str],
    texture_px: int,
) -> Array:
    """All layers and ``valid`` of one window: optical read with a halo (clipped to the grid)."""
    r0, c0 = max(0, win.row_off - halo), max(0, win.col_off - halo)
    r1 = min(grid.height, win.row_off + win.height + halo)
    c1 = min(grid.width, win.col_off + win.width + halo)
    haloed = Window(c0, r0, c1 - c0, r1 - r0)
    core = (
        slice(win.row_off - r0, win.row_off - r0 + win.height),
        slice(win.col_off - c0, win.col_off - c0 + win.width),
    )
    opt = _read(opt_src, opt_idx, haloed)
    bands = dict(zip(present, opt, strict=True))
    layers: list[Array] = [a[core] for a in opt]
    for src, idx in others:
        layers += list(_read(src, idx, win))
    layers += _compute_derived(bands, keys, texture_px, core)
    out = np.empty((len(layers) + 1, win.height, win.width), dtype=np.float32)
    for i, a in enumerate(layers):
        out[i] = a
    out[-1] = np.all(np.isfinite(out[:-1]), axis=0)
    return out


def _missing_hint(missing: Sequence[str]) -> str:
    hints = []
    for m in missing:
        key = _derived_key(m)
        if key is not None:
            bands = " and ".join(DERIVED_INPUTS[key])
            hints.append(
                f"{m} is a derived layer: it needs {bands} in the optical stack and "
                "features: derived to include it (null = all)"
            )
    return ("; " + "; ".join(hints)) if hints else ""


def _base_layers(featureset: str, available: Sequence[str], source: str) -> tuple[str, ...]:
    if featureset not in FEATURE_SETS:
        raise MissingLayerError(
            f"feature set {featureset!r} unknown; choose one of {sorted(FEATURE_SETS)}"
        )
    wanted = FEATURE_SETS[featureset]
    missing = [w for w in wanted if w not in available]
    if missing:
        raise MissingLayerError(
            f"{source} has no layer(s) {missing} needed by feature set {featureset!r} "
            f"(it has {list(available)}); choose a feature set without them for this "
            f"region/year{_missing_hint(missing)}"
        )
    return wanted


def model_layers(
    featureset: str, available: Sequence[str], derived: bool, source: str = "the feature stack"
) -> list[str]:
    """Layers a model of ``featureset`` uses from a stack of ``available`` layers.

    The feature set's base layers (:data:`FEATURE_SETS`; :class:`MissingLayerError` naming
    the first missing ones and what to do) and, when ``derived``, the derived layers of
    ``available`` (in its order) computed only from the feature set's own bands: for
    ``rgbn`` brightness, ndwi, the nir/red and blue/red ratios and the brightness texture,
    never ndsi or ratio_swir1_red. Brightness and texture qualify when every brightness band
    of the stack is in the feature set.
    """
    base = _base_layers(featureset, available, source)
    layers = list(base)
    if derived:
        bright_bands = [b for b in BRIGHTNESS_BANDS if b in available]
        for name in available:
            key = _derived_key(name)
            if key is None or name in base:
                continue
            needs = bright_bands if key in _FROM_BRIGHTNESS else list(DERIVED_INPUTS[key])
            if needs and all(b in base for b in needs):
                layers.append(name)
    return layers


def feature_indices(
    available: Sequence[str], featureset: str, source: str = "the feature stack"
) -> list[int]:
    """Positions of a feature set's layers in ``available``; a clear error if one is absent."""
    wanted = _base_layers(featureset, available, source)
    return [list(available).index(w) for w in wanted]


def stack_layers(path: PathLike) -> list[str]:
    """Layer names of a feature stack, without ``valid``."""
    return [b for b in band_names(path) if b != VALID]
