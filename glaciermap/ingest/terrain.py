"""DEM mosaicking onto the region grid and terrain derivatives.

Copernicus DEM tiles (``Copernicus_DSM_COG_{10,30}_{N|S}dd_00_{E|W}ddd_00_DEM.tif``, EPSG:4326,
1 degree) are selected by name; any other DEM GeoTIFF is accepted and selected by its bounds.
Slope and aspect use Horn's (1981) 3x3 gradient, as ``gdaldem`` does (edges and nodata
neighbours as ``gdaldem -compute_edges``): slope in degrees from horizontal, aspect in degrees
clockwise from north (0 = north-facing, 90 = east), NaN where flat.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid, grid_of
from glaciermap.core.io import PathLike, gdal_cache, names_unreadable_rasters, open_raster
from glaciermap.core.raster import grid_writer, halo_windows, tile_grid, tile_tags, write_vrt
from glaciermap.core.reproject import (
    CONTINUOUS,
    block_windows,
    footprint_overlaps,
    warp_options,
    warp_window,
)

log = logging.getLogger(__name__)


def mosaic_to_grid(
    files: Sequence[PathLike],
    grid: RegionGrid,
    threads: int = 1,
    block: int = 1024,
    cache_mb: int = 64,
) -> NDArray[np.float32]:
    """Elevation (m) on the grid from several DEM files; first file wins where they overlap.

    Filled window by window (``block`` pixels): each file is warped onto one window at a
    time, reading only the part of the tile under it, so memory is the grid's elevation array
    plus one window and GDAL's block cache, bounded to ``cache_mb``, whatever the size and
    number of the tiles.
    """
    dem = np.full(grid.shape, np.nan, dtype=np.float32)
    for win, part in mosaic_blocks(files, grid, threads, block, cache_mb):
        dem[win.toslices()] = part
    _check_cover(files, grid, int(np.isnan(dem).sum()))
    return dem


def mosaic_blocks(
    files: Sequence[PathLike],
    grid: RegionGrid,
    threads: int = 1,
    block: int = 1024,
    cache_mb: int = 64,
    window: Window | None = None,
) -> Iterator[tuple[Window, NDArray[np.float32]]]:
    """The DEM mosaic window by window (first file wins where tiles overlap): each file is
    warped onto one window at a time, so memory is one window whatever the region size.

    ``window``: only this part of the grid (windows are then relative to it), warped with the
    whole grid's resampling scale, so a processing tile's pixels are the region's."""
    if not files:
        raise MissingInputError("no DEM files given; put Copernicus DEM tiles under data/dem/")
    sub = grid if window is None else tile_grid(grid, window)
    with gdal_cache(cache_mb), ExitStack() as stack:
        srcs = [stack.enter_context(open_raster(f)) for f in files]
        for src in srcs:
            footprint_overlaps(src, sub)  # a tile without CRS: an error, not "0% covered"
        opts = [warp_options(src, grid) for src in srcs]
        for win in block_windows(sub, block):
            out = np.full((int(win.height), int(win.width)), np.nan, dtype=np.float32)
            for src, opt in zip(srcs, opts, strict=True):
                if not np.isnan(out).any():
                    break  # the window is full: later files would not win anywhere
                part = warp_window(src, sub, win, CONTINUOUS, [1], threads=threads, options=opt)[0]
                fill = np.isnan(out) & np.isfinite(part)
                out[fill] = part[fill]
            yield win, out


def _check_cover(files: Sequence[PathLike], grid: RegionGrid, n_missing: int) -> None:
    missing = n_missing / (grid.width * grid.height)
    if missing > 0.5:
        raise InputDataError(
            f"DEM files {[Path(f).name for f in files]} cover only {1 - missing:.0%} of the "
            f"region grid {grid.bounds} ({grid.crs}); add the missing DEM tiles to the dem folder"
        )
    if missing > 0:
        log.warning("DEM leaves %.2f%% of the region without elevation", 100 * missing)


def horn_gradient(
    dem: NDArray[Any], res_x: float, res_y: float | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """dz/dx (east) and dz/dy (north) with Horn's 3x3 kernel, in float32.

    As ``gdaldem -compute_edges``: a neighbour outside the array is extrapolated linearly
    (``2 * edge - inner``), a NaN neighbour takes the centre pixel's value; NaN centres give NaN.
    """
    res_y = res_x if res_y is None else res_y
    z = _pad_extrapolate(np.asarray(dem, dtype=np.float32), ((1, 1), (1, 1)))
    return horn_gradient_padded(z, res_x, res_y)


def _pad_extrapolate(
    z: NDArray[np.float32], pad: tuple[tuple[int, int], tuple[int, int]]
) -> NDArray[np.float32]:
    """Pad by linear extrapolation (odd reflection), as gdaldem does along raster edges.

    At the four raster corners gdaldem extrapolates differently (not reproduced here).
    """
    if z.shape[0] < 2 or z.shape[1] < 2:
        return np.pad(z, pad, mode="edge")
    return np.pad(z, pad, mode="reflect", reflect_type="odd")


def horn_gradient_padded(
    z: NDArray[np.float32], res_x: float, res_y: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """As :func:`horn_gradient` for an array that already carries a one-pixel halo."""
    e = z[1:-1, 1:-1]
    views = [
        z[:-2, :-2],
        z[:-2, 1:-1],
        z[:-2, 2:],
        z[1:-1, :-2],
        z[1:-1, 2:],
        z[2:, :-2],
        z[2:, 1:-1],
        z[2:, 2:],
    ]
    has_nan = bool(np.isnan(z).any())
    if has_nan:
        views = [np.where(np.isnan(v), e, v) for v in views]
    a, b, c, d, f, g, h, i = views
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) * np.float32(1 / (8 * res_x))
    dzdy = ((a + 2 * b + c) - (g + 2 * h + i)) * np.float32(1 / (8 * res_y))
    if has_nan:  # no slope where the centre itself has no elevation
        dzdx[np.isnan(e)] = np.nan
        dzdy[np.isnan(e)] = np.nan
    return dzdx, dzdy


def _slope_deg(dzdx: NDArray[np.float32], dzdy: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.degrees(np.arctan(np.sqrt(dzdx * dzdx + dzdy * dzdy))).astype(np.float32)


def slope_aspect(
    dem: NDArray[Any], res_m: float, res_y_m: float | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Slope (degrees) and aspect (degrees clockwise from north, NaN where flat)."""
    return _slope_aspect_from_gradient(*horn_gradient(dem, res_m, res_y_m or res_m))


def _slope_aspect_from_gradient(
    dzdx: NDArray[np.float32], dzdy: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    slope = _slope_deg(dzdx, dzdy)
    # Downslope direction is -grad; azimuth from north, clockwise.
    azimuth = np.degrees(np.arctan2(-dzdx, -dzdy)) % 360.0
    aspect = np.where((dzdx == 0) & (dzdy == 0), np.nan, azimuth).astype(np.float32)
    return slope, aspect


def slope_file(dem_path: PathLike, dest: PathLike, threads: int = 1, block: int = 2048) -> None:
    """Slope (degrees) of a DEM file: :func:`terrain_derivatives` without aspect, Horn's
    kernel on blocks with a one-pixel halo, as the workflow's :func:`build_terrain_tile` runs
    it on each processing tile (so the slope benchmark measures the workflow's kernel)."""
    terrain_derivatives(dem_path, dest, None, threads, block)


@names_unreadable_rasters
def terrain_derivatives(
    dem_path: PathLike,
    slope_dest: PathLike,
    aspect_dest: PathLike | None = None,
    threads: int = 1,
    block: int = 1024,
) -> None:
    """Horn slope and aspect (degrees) of a DEM on its grid, block by block with a one-pixel
    halo (linear extrapolation at the grid edge, as ``gdaldem -compute_edges``), in parallel.

    Blocks are read in order by the calling thread (GDAL handles are not thread-safe) and
    computed by ``threads`` workers (numpy releases the GIL); at most ``2 * threads`` blocks
    are in memory, and the result does not depend on ``block``. The DEM must be in a
    projected CRS with metre units.
    """
    grid = grid_of(dem_path)
    deg = {"UNITS": "degree"}
    res_x, res_y = grid.resolution, abs(grid.transform.e)

    def work(z: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return _slope_aspect_from_gradient(*horn_gradient_padded(z, res_x, res_y))

    with ExitStack() as stack:
        src = stack.enter_context(open_raster(dem_path))
        sd = stack.enter_context(
            grid_writer(slope_dest, grid, ["slope"], "float32", np.nan, deg, ["degree"])
        )
        ad = (
            stack.enter_context(
                grid_writer(aspect_dest, grid, ["aspect"], "float32", np.nan, deg, ["degree"])
            )
            if aspect_dest is not None
            else None
        )
        pool = stack.enter_context(ThreadPoolExecutor(max(1, threads)))
        pending: deque[tuple[Window, Future[tuple[NDArray[np.float32], NDArray[np.float32]]]]]
        pending = deque()

        def flush(keep: int) -> None:
            while len(pending) > keep:
                win, fut = pending.popleft()
                slope, aspect = fut.result()
                sd.write(slope[None], window=win)
                if ad is not None:
                    ad.write(aspect[None], window=win)

        for win, z in _halo_blocks(src, grid, block):
            pending.append((win, pool.submit(work, z)))
            flush(max(1, threads))
        flush(0)


@names_unreadable_rasters
def build_terrain(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dem_dest: PathLike,
    slope_dest: PathLike,
    aspect_dest: PathLike,
    threads: int = 1,
    block: int = 1024,
) -> None:
    """Mosaic DEM tiles on the region grid and write DEM, slope and aspect, block by block
    (memory: a few blocks whatever the region size; results independent of ``block``)."""
    grid = RegionGrid.load(grid_path)
    for f in files:
        with open_raster(f):
            pass  # fail early with a clear message on an unreadable tile
    n_missing = 0
    with grid_writer(
        dem_dest, grid, ["elevation"], "float32", np.nan, {"UNITS": "m"}, units=["m"]
    ) as dst:
        for win, part in mosaic_blocks(files, grid, threads, block):
            n_missing += int(np.isnan(part).sum())
            dst.write(part[None], window=win)
        _check_cover(files, grid, n_missing)  # raises before dem_dest appears
    terrain_derivatives(dem_dest, slope_dest, aspect_dest, threads, block)


def _clipped_halo(
    grid: RegionGrid, win: Window
) -> tuple[Window, tuple[tuple[int, int], tuple[int, int]]]:
    """``win`` grown by Horn's one-pixel halo and clipped to the grid, and the padding
    (rows, cols; before, after) that the clipping took away: what
    :func:`_pad_extrapolate` restores by linear extrapolation at the grid's edge."""
    r0, c0 = int(win.row_off), int(win.col_off)
    r1, c1 = r0 + int(win.height), c0 + int(win.width)
    rr0, cc0 = max(0, r0 - 1), max(0, c0 - 1)
    rr1, cc1 = min(grid.height, r1 + 1), min(grid.width, c1 + 1)
    pad = ((rr0 - (r0 - 1), (r1 + 1) - rr1), (cc0 - (c0 - 1), (c1 + 1) - cc1))
    return Window(cc0, rr0, cc1 - cc0, rr1 - rr0), pad


def _halo_blocks(
    src: rasterio.io.DatasetReader, grid: RegionGrid, block: int
) -> Iterator[tuple[Window, NDArray[np.float32]]]:
    """Blocks of the grid's DEM with a one-pixel halo: the neighbours' pixels inside the grid,
    linear extrapolation beyond its edge (as :func:`horn_gradient` pads the whole grid), so
    slope and aspect do not depend on the block layout."""
    for win, _ in halo_windows(grid, block, 1):
        read, pad = _clipped_halo(grid, win)
        z = np.ma.filled(src.read(1, window=read, masked=True).astype(np.float32), np.nan)
        yield win, _pad_extrapolate(z, pad)


def _overlapping(files: Sequence[PathLike], grid: RegionGrid) -> list[PathLike]:
    """The files whose footprint meets ``grid``, in their order (first file wins)."""
    kept = []
    for f in files:
        with open_raster(f) as src:
            if footprint_overlaps(src, grid):
                kept.append(f)
    return kept


@names_unreadable_rasters
def build_terrain_tile(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dem_dest: PathLike,
    slope_dest: PathLike,
    aspect_dest: PathLike,
    tile: Window,
    threads: int = 1,
    block: int = 1024,
) -> None:
    """DEM (m), Horn slope and aspect (degrees) of one processing tile of the region grid.

    The DEM is mosaicked on the tile grown by one pixel inside the region grid (the halo of
    Horn's 3x3 kernel) and extrapolated linearly only beyond the region's edge, as
    :func:`build_terrain` does for the whole grid, so a mosaic of tiles equals the whole-grid
    result, seams included. Only the DEM files under the tile are read (``files`` may be
    those alone, or empty: the tile is then NaN). Memory: about 15
    tile-sized float32 arrays (the elevation, Horn's neighbour views where voids are filled,
    slope, aspect: ~250 MB for a 2048 px tile) plus one warped window, whatever the region
    size.
    Each file carries the tag ``MISSING_PIXELS`` (tile pixels without elevation), from which
    :func:`gather_terrain_tiles` checks the DEM's cover of the region.
    """
    grid = RegionGrid.load(grid_path)
    halo_win, pad = _clipped_halo(grid, tile)
    halo = tile_grid(grid, halo_win)
    # opens every file (an unreadable one is one clear line); none: no DEM file reaches
    # this tile, which is then NaN (the gather checks the region's cover)
    used = _overlapping(files, halo)
    log.info("terrain: %d of %d DEM file(s) under tile %s", len(used), len(files), tile)
    z = np.full(halo.shape, np.nan, dtype=np.float32)
    if used:
        for win, part in mosaic_blocks(used, grid, threads, block, window=halo_win):
            z[win.toslices()] = part
    (top, bottom), (left, right) = pad
    dem = z[1 - top : z.shape[0] - 1 + bottom, 1 - left : z.shape[1] - 1 + right]
    slope, aspect = _slope_aspect_from_gradient(
        *horn_gradient_padded(_pad_extrapolate(z, pad), grid.resolution, abs(grid.transform.e))
    )
    missing = int(np.isnan(dem).sum())
    out = tile_grid(grid, tile)
    tags = {"MISSING_PIXELS": str(missing)}
    with ExitStack() as stack:  # the three appear together, or none on an error
        for dest, name, data, unit in (
            (dem_dest, "elevation", dem, "m"),
            (slope_dest, "slope", slope, "degree"),
            (aspect_dest, "aspect", aspect, "degree"),
        ):
            tag = {"UNITS": unit, **tags}
            w = grid_writer(dest, out, [name], "float32", np.nan, tag, units=[unit])
            stack.enter_context(w).write(data[None])
    if missing:
        log.info("terrain: %d of %d tile pixels without elevation", missing, dem.size)


def gather_terrain_tiles(
    grid_path: PathLike,
    windows: Sequence[Window],
    tiles: dict[str, Sequence[PathLike]],
    dests: dict[str, PathLike],
    files: Sequence[PathLike] = (),
) -> None:
    """The region's DEM, slope and aspect: one VRT mosaic per layer (``tiles`` and ``dests``
    keyed ``dem``, ``slope``, ``aspect``; tile files in the order of ``windows``), written
    only when the DEM ``files`` cover at least half of the region (the tiles'
    ``MISSING_PIXELS`` tags summed), as :func:`build_terrain` requires."""
    grid = RegionGrid.load(grid_path)
    n_missing = 0
    for path in tiles["dem"]:
        n_missing += int(tile_tags(path, "MISSING_PIXELS", "terrain")["MISSING_PIXELS"])
    _check_cover(files or [Path(tiles["dem"][0]).parent.parent], grid, n_missing)
    for key, dest in dests.items():
        unit = {"UNITS": "m" if key == "dem" else "degree"}
        write_vrt(dest, grid, list(zip(tiles[key], windows, strict=True)), unit)
