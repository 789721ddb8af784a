"""DEM mosaicking onto the region grid and terrain derivatives.

Copernicus DEM tiles (``Copernicus_DSM_COG_{10,30}_{N|S}dd_00_{E|W}ddd_00_DEM.tif``, EPSG:4326,
1 degree) are selected by name; any other DEM GeoTIFF is accepted and selected by its bounds.
Slope and aspect use Horn's (1981) 3x3 gradient, as ``gdaldem`` does: slope in degrees from
horizontal, aspect in degrees clockwise from north (0 = north-facing, 90 = east), NaN where flat.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glaciermap.errors import InputDataError, MissingInputError
from glaciermap.grid import RegionGrid, write_raster
from glaciermap.io import PathLike, open_raster
from glaciermap.reproject import CONTINUOUS, reproject_to_grid

log = logging.getLogger(__name__)

_COP_RE = re.compile(
    r"Copernicus_DSM_(?:COG_)?(?P<res>\d{2})_(?P<ns>[NS])(?P<lat>\d{2})_00_(?P<ew>[EW])"
    r"(?P<lon>\d{3})_00_DEM\.tif$",
    re.IGNORECASE,
)


def copernicus_tile_bounds(name: str) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) in degrees of a Copernicus DEM tile name, else None."""
    m = _COP_RE.search(name)
    if not m:
        return None
    lat = int(m["lat"]) * (1 if m["ns"].upper() == "N" else -1)
    lon = int(m["lon"]) * (1 if m["ew"].upper() == "E" else -1)
    return (float(lon), float(lat), float(lon + 1), float(lat + 1))


def select_dem_tiles(
    files: Sequence[PathLike], bounds_lonlat: tuple[float, float, float, float]
) -> list[Path]:
    """DEM files whose Copernicus tile name intersects ``bounds_lonlat``; files not named like
    Copernicus tiles are all kept (their footprint is checked when mosaicking)."""
    w, s, e, n = bounds_lonlat
    keep = []
    for f in map(Path, files):
        b = copernicus_tile_bounds(f.name)
        if b is None or (b[0] < e and b[2] > w and b[1] < n and b[3] > s):
            keep.append(f)
    return sorted(keep)


def mosaic_to_grid(
    files: Sequence[PathLike], grid: RegionGrid, threads: int = 1
) -> NDArray[np.float32]:
    """Elevation (m) on the grid from several DEM files; first file wins where they overlap."""
    if not files:
        raise MissingInputError("no DEM files given; put Copernicus DEM tiles under data/dem/")
    dem = np.full(grid.shape, np.nan, dtype=np.float32)
    for f in files:
        part = reproject_to_grid(f, grid, CONTINUOUS, bands=[1], threads=threads)[0]
        fill = np.isnan(dem) & np.isfinite(part)
        dem[fill] = part[fill]
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
) -> tuple[NDArray[Any], NDArray[Any]]:
    """dz/dx (east) and dz/dy (north) with Horn's kernel; NaN where a neighbour is missing.

    Edges use replicated values (gdaldem's ``-compute_edges`` behaves alike).
    """
    res_y = res_x if res_y is None else res_y
    z = dem.astype(np.float64)
    p = np.pad(z, 1, mode="edge")
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * res_x)
    dzdy = ((a + 2 * b + c) - (g + 2 * h + i)) / (8 * res_y)
    return dzdx, dzdy


def slope_aspect(
    dem: NDArray[Any], res_m: float, res_y_m: float | None = None
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Slope (degrees) and aspect (degrees clockwise from north, NaN where flat)."""
    dzdx, dzdy = horn_gradient(dem, res_m, res_y_m or res_m)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy))).astype(np.float32)
    # Downslope direction is -grad; azimuth from north, clockwise.
    aspect = np.degrees(np.arctan2(-dzdx, -dzdy)) % 360.0
    aspect = np.where((dzdx == 0) & (dzdy == 0), np.nan, aspect).astype(np.float32)
    return slope, aspect


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


def grid_bounds_lonlat(
    grid: RegionGrid, pad_deg: float = 0.01
) -> tuple[float, float, float, float]:
    """Geographic bounds of a grid, padded (for DEM tile selection)."""
    import rasterio.warp

    w, s, e, n = rasterio.warp.transform_bounds(
        grid.rio_crs, "EPSG:4326", *grid.bounds, densify_pts=21
    )
    return (w - pad_deg, s - pad_deg, e + pad_deg, n + pad_deg)
