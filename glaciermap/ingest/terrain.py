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
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.core.io import PathLike, atomic_path, open_raster
from glaciermap.core.reproject import CONTINUOUS, block_windows, warp_options, warp_window

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
    if not files:
        raise MissingInputError("no DEM files given; put Copernicus DEM tiles under data/dem/")
    dem = np.full(grid.shape, np.nan, dtype=np.float32)
    with rasterio.Env(GDAL_CACHEMAX=cache_mb), ExitStack() as stack:
        srcs = [stack.enter_context(open_raster(f)) for f in files]
        opts = [warp_options(src, grid) for src in srcs]
        for win in block_windows(grid, block):
            part_of_dem = dem[win.toslices()]  # a view: filled in place
            for src, opt in zip(srcs, opts, strict=True):
                if not np.isnan(part_of_dem).any():
                    break  # the window is full: later files would not win anywhere
                part = warp_window(src, grid, win, CONTINUOUS, [1], threads=threads, options=opt)[0]
                fill = np.isnan(part_of_dem) & np.isfinite(part)
                part_of_dem[fill] = part[fill]
    missing = float(np.isnan(dem).mean())
    if missing > 0.5:
        raise InputDataError(
            f"DEM files {[Path(f).name for f in files]} cover only {1 - missing:.0%} of the "
            f"region grid {grid.bounds} ({grid.crs}); add the missing DEM tiles to the dem folder"
        )
    if missing > 0:
        log.warning("DEM leaves %.2f%% of the region without elevation", 100 * missing)
    return dem


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
    dzdx, dzdy = horn_gradient(dem, res_m, res_y_m or res_m)
    slope = _slope_deg(dzdx, dzdy)
    # Downslope direction is -grad; azimuth from north, clockwise.
    azimuth = np.degrees(np.arctan2(-dzdx, -dzdy)) % 360.0
    aspect = np.where((dzdx == 0) & (dzdy == 0), np.nan, azimuth).astype(np.float32)
    return slope, aspect


def slope_file(dem_path: PathLike, dest: PathLike, threads: int = 1, block: int = 2048) -> None:
    """Slope (degrees) of a DEM file, block by block with a one-pixel halo, in parallel.

    Blocks are read in order by the calling thread (GDAL handles are not thread-safe) and
    computed by ``threads`` workers (numpy releases the GIL); at most ``2 * threads`` blocks
    are in memory. The DEM must be in a projected CRS with metre units.
    """
    with open_raster(dem_path) as src:
        res_x, res_y = src.res
        height, width = src.height, src.width
        nodata = src.nodata
        profile = src.profile.copy()
        profile.update(
            dtype="float32",
            count=1,
            nodata=np.nan,
            driver="GTiff",
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
            predictor=3,
            num_threads=max(1, threads),
            BIGTIFF="IF_SAFER",
        )

        def read(r0: int, c0: int, h: int, w: int) -> NDArray[np.float32]:
            rr0, cc0 = max(r0 - 1, 0), max(c0 - 1, 0)
            rr1, cc1 = min(r0 + h + 1, height), min(c0 + w + 1, width)
            z = src.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0)).astype(np.float32)
            if nodata is not None and not np.isnan(nodata):
                z[z == nodata] = np.nan
            pad = ((rr0 - (r0 - 1), (r0 + h + 1) - rr1), (cc0 - (c0 - 1), (c0 + w + 1) - cc1))
            return _pad_extrapolate(z, pad)

        def work(z: NDArray[np.float32]) -> NDArray[np.float32]:
            return _slope_deg(*horn_gradient_padded(z, res_x, res_y))

        windows = [
            (r0, c0, min(block, height - r0), min(block, width - c0))
            for r0 in range(0, height, block)
            for c0 in range(0, width, block)
        ]
        with atomic_path(dest) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            dst.set_band_description(1, "slope")
            pending: deque[tuple[tuple[int, int, int, int], Future[NDArray[np.float32]]]] = deque()
            with ThreadPoolExecutor(max(1, threads)) as pool:
                for win in windows:
                    pending.append((win, pool.submit(work, read(*win))))
                    while len(pending) > max(1, threads) or (win == windows[-1] and pending):
                        (r0, c0, h, w), fut = pending.popleft()
                        dst.write(fut.result()[None], window=Window(c0, r0, w, h))


def build_terrain(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dem_dest: PathLike,
    slope_dest: PathLike,
    aspect_dest: PathLike,
    threads: int = 1,
) -> None:
    """Mosaic DEM tiles on the region grid and write DEM, slope and aspect."""
    grid = RegionGrid.load(grid_path)
    for f in files:
        with open_raster(f):
            pass  # fail early with a clear message on an unreadable tile
    dem = mosaic_to_grid(files, grid, threads)
    slope, aspect = slope_aspect(dem, grid.resolution, abs(grid.transform.e))
    write_raster(dem_dest, dem, grid, ["elevation"], nodata=np.nan, tags={"UNITS": "m"})
    write_raster(slope_dest, slope, grid, ["slope"], nodata=np.nan, tags={"UNITS": "degree"})
    write_raster(aspect_dest, aspect, grid, ["aspect"], nodata=np.nan, tags={"UNITS": "degree"})
