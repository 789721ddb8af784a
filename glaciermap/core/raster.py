"""The raster engine every stage writes through: a tiled GeoTIFF on the region grid, written
block by block, with band descriptions, units, scales and offsets set through rasterio's own
API, finished (optionally) as a Cloud-Optimized GeoTIFF with overviews by GDAL's COG driver,
and renamed into place atomically (a killed job leaves no half-written product); and block
iteration with a halo (boundless reads beyond the grid edge).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import PathLike, atomic_path

COG_BLOCK = 512
"""Tile size of the Cloud-Optimized GeoTIFFs (GDAL's default)."""


@contextlib.contextmanager
def grid_writer(
    dest: PathLike,
    grid: RegionGrid,
    names: Sequence[str],
    dtype: str = "float32",
    nodata: float | None = None,
    tags: dict[str, str] | None = None,
    units: Sequence[str] | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    cog: bool = False,
) -> Iterator[DatasetWriter]:
    """A dataset on ``grid`` to write blocks into (``dst.write(data, window=win)``).

    Band ``i`` is described as ``names[i]`` with optional unit, scale and offset (what
    ``gdalinfo`` and xarray show); on leaving the block the file is closed, converted to a
    Cloud-Optimized GeoTIFF with overviews if ``cog`` (deflate, predictor kept), and renamed
    to ``dest``. On an exception nothing is left behind and ``dest`` is untouched.
    """
    profile = grid.profile(count=len(names), dtype=dtype, nodata=nodata)
    with atomic_path(dest) as tmp:
        work = tmp.with_name(tmp.stem + ".work" + tmp.suffix) if cog else tmp
        try:
            with rasterio.open(work, "w", **profile) as dst:
                for i, name in enumerate(names, start=1):
                    dst.set_band_description(i, name)
                    if units is not None:
                        dst.set_band_unit(i, units[i - 1])
                if scales is not None:
                    dst.scales = tuple(scales)
                if offsets is not None:
                    dst.offsets = tuple(offsets)
                if tags:
                    dst.update_tags(**tags)
                yield dst
            if cog:
                rasterio.shutil.copy(
                    work,
                    tmp,
                    driver="COG",
                    COMPRESS="DEFLATE",
                    PREDICTOR="YES",
                    BLOCKSIZE=COG_BLOCK,
                    OVERVIEWS="IGNORE_EXISTING",
                    RESAMPLING="AVERAGE",
                    BIGTIFF="IF_SAFER",
                )
        finally:
            if cog:
                for leftover in (work, Path(str(work) + ".aux.xml")):
                    leftover.unlink(missing_ok=True)


def halo_windows(
    grid: RegionGrid, block: int = 1024, halo: int = 0
) -> Iterator[tuple[Window, Window]]:
    """(block, read window) pairs covering the grid row by row: each read window is the block
    grown by ``halo`` pixels on every side, beyond the grid edge where the block touches it
    (read it with ``boundless=True``), so neighbourhood operations give the same values
    whatever the block layout."""
    for r0 in range(0, grid.height, block):
        for c0 in range(0, grid.width, block):
            h, w = min(block, grid.height - r0), min(block, grid.width - c0)
            yield Window(c0, r0, w, h), Window(c0 - halo, r0 - halo, w + 2 * halo, h + 2 * halo)
