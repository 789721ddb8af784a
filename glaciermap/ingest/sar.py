"""SAR layers on the region grid: temporal backscatter in dB and stacked InSAR coherence.

Backscatter files are single-polarisation rasters named ``..._{VV|VH|HH|HV}.tif`` (as ASF
HyP3 RTC products are), holding linear power (gamma0/sigma0) unless told otherwise; dates come
from the first ``YYYYMMDD`` in the name. Coherence files are named ``..._corr.tif`` (HyP3
InSAR) or contain ``coh``; values 0..1. Co-pol is VV or HH, cross-pol VH or HV.
Averaging is done in linear power, then converted: ``dB = 10 log10(power)``.

Stacks are reduced window by window of the region grid (:func:`reduced_blocks`): each file is
warped onto one window at a time, reading only the part of the scene under it, so memory is
about ``dates x block^2`` floats whatever the size of the scenes (a Sentinel-1 frame is
250 km wide), and the ``build_*`` functions write the result block by block.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import PathLike, gdal_cache, names_unreadable_rasters, open_raster
from glaciermap.core.raster import grid_writer, tile_grid, tile_tags, write_vrt
from glaciermap.core.reproject import (
    CONTINUOUS,
    block_windows,
    footprint_overlaps,
    warp_options,
    warp_window,
)
from glaciermap.ingest.names import (
    LAYER_COHERENCE,
    backscatter_layers,
    classify_sar_files,
    layer_unit,
    select_pairs,
)

log = logging.getLogger(__name__)


def to_db(power: NDArray[np.floating], floor: float = 1e-6) -> NDArray[np.float32]:
    """Linear power to decibels; values below ``floor`` are clipped (no -inf)."""
    with np.errstate(invalid="ignore"):
        return (10.0 * np.log10(np.maximum(power, floor))).astype(np.float32)


def _to_power(a: NDArray[np.float32], scale: str) -> NDArray[np.float32]:
    if scale == "amplitude":
        return a**2
    if scale == "db":
        return np.asarray(10 ** (a / 10), dtype=np.float32)
    return a


# Window size (pixels) of the block-by-block temporal reduction: the mean keeps one window,
# medians and percentiles stack a window of every date (4 bytes x dates x BLOCK^2 each).
BLOCK_MEAN, BLOCK = 1024, 512
# GDAL's block cache (MB) while reducing: left at its default (5 % of RAM) it keeps the tiles
# under the region of every open file, dates x region; source tiles are re-read instead.
CACHE_MB = 64


def _check_reducer(reducer: str) -> None:
    if reducer != "mean" and reducer != "median" and not re.fullmatch(r"p\d{1,2}", reducer):
        raise ConfigError(
            f"SAR reducer {reducer!r} unknown (sar: backscatter_reducer, coherence_reducer); "
            "use mean, median or a percentile pNN such as p90"
        )


def _nanpercentile_sorting(stack: NDArray[np.float32], q: float) -> NDArray[np.float32]:
    """``np.nanpercentile(stack, q, axis=0)`` as float32, bit for bit, but vectorised; sorts
    ``stack`` along axis 0 in place.

    numpy computes a NaN-aware percentile along an axis pixel by pixel in Python (minutes
    for a region); here pixels are grouped by their number of valid dates and each group
    goes through ``np.percentile``, which is what ``nanpercentile`` applies to every pixel.
    """
    stack.sort(axis=0)  # NaN last
    valid = (~np.isnan(stack)).sum(axis=0)
    out = np.full(stack.shape[1:], np.nan, dtype=np.float32)
    for k in range(1, stack.shape[0] + 1):
        sel = valid == k
        if sel.any():
            out[sel] = np.percentile(stack[:k, sel], q, axis=0, overwrite_input=True)
    return out


def reduced_blocks(
    paths: Sequence[Path],
    grid: RegionGrid,
    threads: int = 1,
    scale: str = "power",
    reducer: str = "mean",
    block: int | None = None,
    window: Window | None = None,
) -> Iterator[tuple[Window, NDArray[np.float32]]]:
    """Per-pixel ``mean``, ``median`` or percentile (``p10`` ... ``p90``) over files on the
    grid, in the power domain, one window (:func:`~glaciermap.core.reproject.block_windows`) at a
    time; an error after the last window if no file overlaps the grid.

    ``window``: only this part of the grid (a processing tile; windows are then relative to
    it), from the files that overlap it, warped with the whole grid's resampling scale; a
    tile no file reaches is NaN, not an error (the gather checks the region's cover).

    Each file is warped onto the window alone, reading only the source blocks under it. The
    mean streams (one window in memory; ``block`` 1024 by default); median and percentiles
    stack the dates of a window (``block`` 512 by default).
    All files stay open: bound GDAL's block cache (``gdal_cache``, as
    :func:`temporal_reduce` and the ``build_*`` functions do) or it holds the source tiles
    under the region of every date.
    """
    _check_reducer(reducer)
    if block is None:
        block = BLOCK_MEAN if reducer == "mean" else BLOCK
    covered = False
    with ExitStack() as stack:
        srcs = [stack.enter_context(open_raster(p)) for p in paths]
        sub = grid if window is None else tile_grid(grid, window)
        inside = [footprint_overlaps(src, sub) for src in srcs]  # a file without CRS: error
        if window is not None:  # files off the region: :func:`gather_sar_tiles` warns once
            log.info("SAR: %d of %d files overlap tile %s", sum(inside), len(paths), window)
        elif not all(inside):
            outside = [p.name for p, ok in zip(paths, inside, strict=True) if not ok]
            log.warning(
                "SAR: %d of %d files lie outside the region grid and are left out: %s",
                len(outside),
                len(paths),
                outside,
            )
        srcs = [src for src, ok in zip(srcs, inside, strict=True) if ok]
        opts = [warp_options(src, grid) for src in srcs]
        for win in block_windows(sub, block):
            shape = (int(win.height), int(win.width))
            n = np.zeros(shape, dtype=np.int32)
            if reducer == "mean":
                acc = np.zeros(shape, dtype=np.float64)
            else:
                dates = np.empty((len(srcs), *shape), dtype=np.float32)
            for i, (src, opt) in enumerate(zip(srcs, opts, strict=True)):
                a = warp_window(src, sub, win, CONTINUOUS, [1], threads=threads, options=opt)[0]
                a = _to_power(a, scale)
                ok = np.isfinite(a)
                n[ok] += 1
                if reducer == "mean":
                    acc[ok] += a[ok]
                else:
                    dates[i] = a
            covered = covered or bool(n.any())
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
                if reducer == "mean":
                    out = np.where(n > 0, acc / n, np.nan).astype(np.float32)
                else:
                    q = 50.0 if reducer == "median" else float(reducer[1:])
                    out = _nanpercentile_sorting(dates, q)
            yield win, out
    if not covered and window is None:
        raise InputDataError(
            f"SAR files {[p.name for p in paths]} do not overlap the region grid {grid.bounds} "
            f"({grid.crs}); check their footprint and CRS"
        )


def temporal_reduce(
    paths: Sequence[Path],
    grid: RegionGrid,
    threads: int = 1,
    scale: str = "power",
    reducer: str = "mean",
    block: int | None = None,
    cache_mb: int = CACHE_MB,
) -> NDArray[np.float32]:
    """The whole grid of :func:`reduced_blocks` as one array."""
    out = np.full(grid.shape, np.nan, dtype=np.float32)
    with gdal_cache(cache_mb):
        for win, data in reduced_blocks(paths, grid, threads, scale, reducer, block):
            out[win.toslices()] = data
    return out


def _backscatter_layers(
    files: Sequence[PathLike], reducer: str, layers: Sequence[str] | None = None
) -> list[tuple[str, list[Path]]]:
    """(layer name, files) per available polarisation: co-pol (required), then cross-pol.
    ``layers``: the region's layer names, for a processing tile given only the files over
    it: every one of them, with the tile's files (maybe none: the layer is NaN there)."""
    _check_reducer(reducer)
    found = backscatter_layers(classify_sar_files(files))
    if layers is not None:
        have = dict(found)
        return [(name, have.get(name, [])) for name in layers]
    if not found:
        raise MissingInputError(
            f"no co-polarised (VV/HH) backscatter file among {[Path(f).name for f in files]}; "
            "name files ..._VV.tif or ..._HH.tif"
        )
    for layer, sel in found:
        log.info("backscatter %s: %d dates, temporal %s", layer, len(sel), reducer)
    return found


def backscatter_stack(
    files: Sequence[PathLike],
    grid: RegionGrid,
    threads: int = 1,
    scale: str = "power",
    reducer: str = "mean",
) -> tuple[NDArray[np.float32], list[str]]:
    """Temporal backscatter (dB) per available polarisation: co-pol, then cross-pol."""
    layers = _backscatter_layers(files, reducer)
    bands = [to_db(temporal_reduce(sel, grid, threads, scale, reducer)) for _, sel in layers]
    return np.stack(bands), [name for name, _ in layers]


def _coherence_files(
    files: Sequence[PathLike],
    max_baseline_days: int | None,
    months: Sequence[int] | None,
    reducer: str,
    tile_only: bool = False,
) -> list[Path]:
    """The coherence pairs selected among ``files``; ``tile_only``: the files over one
    processing tile, where none (NaN there) is no error: the region's selection is checked
    when the DAG is built."""
    pairs = [s for s in classify_sar_files(files) if s.kind == "coherence"]
    chosen = select_pairs(pairs, max_baseline_days, months)
    if tile_only:
        log.info("coherence: %d of %d pairs over the tile", len(chosen), len(pairs))
        return [p.path for p in chosen]
    if not pairs:
        raise MissingInputError(f"no coherence file (..._corr.tif) among {list(map(str, files))}")
    if not chosen:
        raise InputDataError(
            f"none of the coherence pairs {[p.path.name for p in pairs]} has a baseline <= "
            f"{max_baseline_days} days in months {list(months or [])}; widen sar.max_baseline_days "
            "or sar.months"
        )
    log.info("coherence: %d of %d pairs, temporal %s", len(chosen), len(pairs), reducer)
    return [p.path for p in chosen]


def _check_coherence_range(sel: Sequence[Path], lo: float, hi: float) -> None:
    if hi > 1.0 + 1e-3 or lo < -1e-3:
        raise InputDataError(
            f"coherence files {[p.name for p in sel]} hold values outside 0..1 "
            f"({lo:.2f}..{hi:.2f}); pass coherence magnitude, not phase"
        )


def coherence_stack(
    files: Sequence[PathLike],
    grid: RegionGrid,
    threads: int = 1,
    reducer: str = "mean",
    max_baseline_days: int | None = None,
    months: Sequence[int] | None = None,
) -> NDArray[np.float32]:
    """Co-pol coherence (0..1) over the selected pairs (see :func:`select_pairs`)."""
    sel = _coherence_files(files, max_baseline_days, months, reducer)
    coh = temporal_reduce(sel, grid, threads, "power", reducer)
    _check_coherence_range(sel, float(np.nanmin(coh)), float(np.nanmax(coh)))
    return coh


def _write_blocks(
    dest: PathLike,
    grid: RegionGrid,
    layers: Sequence[tuple[str, Iterator[tuple[Window, NDArray[np.float32]]]]],
    tags: dict[str, str],
    check: Callable[[float, float], None] | None = None,
    cache_mb: int = CACHE_MB,
) -> None:
    """Write float32 layers given block by block into ``dest``, atomically, with GDAL's block
    cache bounded to ``cache_mb``. ``check`` gets the range of the values written (min, max;
    NaN when all are NaN) before ``dest`` appears and may raise to discard it. The tag
    ``COVERED_PIXELS`` counts the first layer's values (for the gather of tiles)."""
    lo, hi = np.inf, -np.inf
    names = [name for name, _ in layers]
    units = [layer_unit(name) for name in names]
    covered = 0
    with gdal_cache(cache_mb):
        with grid_writer(dest, grid, names, "float32", np.nan, tags, units=units) as dst:
            for i, (_, blocks) in enumerate(layers, start=1):
                for win, data in blocks:
                    finite = np.isfinite(data)
                    if i == 1:
                        covered += int(finite.sum())
                    if finite.any():
                        lo = min(lo, float(np.nanmin(data)))
                        hi = max(hi, float(np.nanmax(data)))
                    dst.write(data, i, window=win)
            dst.update_tags(COVERED_PIXELS=str(covered))
            if check is not None:  # may raise: then nothing is written
                check(*((lo, hi) if lo <= hi else (np.nan, np.nan)))


def _db_blocks(
    blocks: Iterator[tuple[Window, NDArray[np.float32]]],
) -> Iterator[tuple[Window, NDArray[np.float32]]]:
    for win, power in blocks:
        yield win, to_db(power)


@names_unreadable_rasters
def build_backscatter(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dest: PathLike,
    threads: int = 1,
    scale: str = "power",
    reducer: str = "mean",
    block: int | None = None,
    cache_mb: int = CACHE_MB,
    tile: Window | None = None,
    layers: Sequence[str] | None = None,
) -> None:
    """Temporal backscatter (dB) per polarisation into ``dest``, written block by block;
    ``tile``: only this processing tile of the grid (see :func:`gather_sar_tiles`), from
    ``files`` (all of the region's, or those over the tile with the region's ``layers``)."""
    grid = RegionGrid.load(grid_path)
    blocks = [
        (name, _db_blocks(reduced_blocks(sel, grid, threads, scale, reducer, block, tile)))
        for name, sel in _backscatter_layers(files, reducer, layers)
    ]
    out = grid if tile is None else tile_grid(grid, tile)
    _write_blocks(dest, out, blocks, {"UNITS": "dB", "REDUCER": reducer}, cache_mb=cache_mb)


@names_unreadable_rasters
def build_coherence(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dest: PathLike,
    threads: int = 1,
    reducer: str = "mean",
    max_baseline_days: int | None = None,
    months: Sequence[int] | None = None,
    block: int | None = None,
    cache_mb: int = CACHE_MB,
    tile: Window | None = None,
    tile_only: bool = False,
) -> None:
    """Temporal coherence into ``dest``, written block by block; an error (and no ``dest``)
    when the files hold values outside 0..1. ``tile``: only this processing tile of the
    grid (see :func:`gather_sar_tiles`); ``tile_only``: ``files`` are those over the tile
    (maybe none selected: NaN), not all of the region's."""
    grid = RegionGrid.load(grid_path)
    _check_reducer(reducer)
    sel = _coherence_files(files, max_baseline_days, months, reducer, tile_only)
    blocks = reduced_blocks(sel, grid, threads, "power", reducer, block, tile)
    _write_blocks(
        dest,
        grid if tile is None else tile_grid(grid, tile),
        [(LAYER_COHERENCE, blocks)],
        {"REDUCER": reducer},
        check=lambda lo, hi: _check_coherence_range(sel, lo, hi),
        cache_mb=cache_mb,
    )


def gather_sar_tiles(
    grid_path: PathLike,
    parts: Sequence[tuple[PathLike, Window]],
    dest: PathLike,
    files: Sequence[PathLike] = (),
) -> None:
    """A SAR layer of the region (backscatter or coherence): a VRT mosaic ``dest`` of its
    processing tiles (each at its window), written only when the SAR ``files`` reach some
    of the region (the tiles' ``COVERED_PIXELS`` tags summed), as the whole-grid step
    requires. Tags (units, reducer) are the tiles'; ``SKIPPED_FILES`` names the ``files``
    outside the region (also a warning), which the report's map shows."""
    grid = RegionGrid.load(grid_path)
    covered = 0
    for path, _ in parts:
        tags = tile_tags(path, "COVERED_PIXELS", "SAR")
        covered += int(tags["COVERED_PIXELS"])
    if not covered:
        raise InputDataError(
            f"SAR files {[Path(f).name for f in files]} do not overlap the region grid "
            f"{grid.bounds} ({grid.crs}); check their footprint and CRS"
        )
    outside = []
    for f in files:
        with open_raster(f) as src:
            if not footprint_overlaps(src, grid):
                outside.append(Path(f).name)
    if outside:
        log.warning(
            "SAR: %d of %d files lie outside the region grid and are left out: %s",
            len(outside),
            len(files),
            outside,
        )
    tags.pop("COVERED_PIXELS")
    tags.pop("AREA_OR_POINT", None)
    region_tags = {**tags, "COVERED_PIXELS": str(covered), "SKIPPED_FILES": ",".join(outside)}
    write_vrt(dest, grid, parts, region_tags)
    log.info("%s: %.1f%% of the region covered", dest, 100 * covered / (grid.width * grid.height))
