"""Warping any raster onto a region grid.

Continuous layers use bilinear resampling (or ``average`` when downsampling by a large
factor); masks and class layers use ``nearest``. Warping is done by GDAL, multi-threaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from glaciermap.grid import RegionGrid
from glaciermap.io import PathLike, atomic_path, open_raster

CONTINUOUS = Resampling.bilinear
CATEGORICAL = Resampling.nearest


def reproject_to_grid(
    path: PathLike,
    grid: RegionGrid,
    resampling: Resampling = CONTINUOUS,
    bands: Sequence[int] | None = None,
    src_nodata: float | None = None,
    dst_dtype: str = "float32",
    dst_nodata: float = np.nan,
    threads: int = 1,
) -> NDArray[np.generic]:
    """Warp bands (1-based, all by default) of ``path`` onto ``grid``.

    Pixels outside the source or equal to its nodata value become ``dst_nodata``.
    Returns ``(band, row, col)``.
    """
    with open_raster(path) as src:
        idx = list(bands) if bands is not None else list(range(1, src.count + 1))
        nodata = src.nodata if src_nodata is None else src_nodata
        out = np.full((len(idx), *grid.shape), dst_nodata, dtype=dst_dtype)
        same = (
            src.crs == grid.rio_crs
            and src.transform.almost_equals(grid.transform)
            and (src.height, src.width) == grid.shape
        )
        if same:  # no warp needed: read directly
            data = src.read(idx)
            if nodata is not None:
                mask = data == nodata if not np.isnan(nodata) else np.isnan(data)
                data = np.where(mask, dst_nodata, data)
            out[:] = data.astype(dst_dtype)
            return out
        for i, b in enumerate(idx):
            rasterio.warp.reproject(
                source=rasterio.band(src, b),
                destination=out[i],
                src_nodata=nodata,
                dst_transform=grid.transform,
                dst_crs=grid.rio_crs,
                dst_nodata=dst_nodata,
                resampling=resampling,
                num_threads=max(1, threads),
            )
    return out


def block_windows(grid: RegionGrid, block: int = 1024) -> Iterator[Window]:
    """Windows of at most ``block`` x ``block`` pixels covering the grid, row by row."""
    for r0 in range(0, grid.height, block):
        for c0 in range(0, grid.width, block):
            yield Window(c0, r0, min(block, grid.width - c0), min(block, grid.height - r0))


@contextlib.contextmanager
def warped(
    path: PathLike,
    grid: RegionGrid,
    resampling: Resampling = CONTINUOUS,
    src_nodata: float | None = None,
    threads: int = 1,
    dtype: str | None = None,
    mem_limit_mb: int = 256,
) -> Iterator[WarpedVRT]:
    """A virtual dataset of ``path`` warped onto ``grid``: read any window from it.

    GDAL warps only what a read needs, with ``threads`` worker threads and at most
    ``mem_limit_mb`` of warp buffers, so memory is bounded whatever the scene size.
    Pixels outside the source or equal to its nodata read as the VRT nodata.
    """
    with open_raster(path) as src:
        nodata = src.nodata if src_nodata is None else src_nodata
        opts: dict[str, object] = {}
        if nodata is not None:
            opts.update(src_nodata=nodata, nodata=nodata)
        if dtype is not None:
            opts["dtype"] = dtype
        with WarpedVRT(
            src,
            crs=grid.rio_crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=resampling,
            warp_mem_limit=mem_limit_mb,
            warp_extras={"NUM_THREADS": max(1, threads)},
            **opts,
        ) as vrt:
            yield vrt


def reproject_file(
    path: PathLike,
    grid: RegionGrid,
    dest: PathLike,
    resampling: Resampling = CONTINUOUS,
    threads: int = 1,
    block: int = 2048,
    cache_mb: int = 256,
    tolerance: float = 0.125,
) -> None:
    """Warp every band of ``path`` onto ``grid`` into a tiled GeoTIFF, block by block.

    Each output block is warped by GDAL's multi-threaded chunked warper (as ``gdalwarp
    -multi``) from the source dataset, which reads only the source window it needs. The data
    type and nodata of the source are kept. ``tolerance`` is the error (pixels) allowed to
    GDAL's approximate coordinate transformer, as ``gdalwarp -et``; 0 transforms exactly.
    Peak memory is one block of all bands, the warp buffers and GDAL's block cache
    (``cache_mb``), independent of the scene and grid sizes.
    """
    with rasterio.Env(GDAL_CACHEMAX=cache_mb), open_raster(path) as src:
        profile = grid.profile(count=src.count, dtype=src.dtypes[0], nodata=src.nodata)
        profile["predictor"] = 2 if np.issubdtype(np.dtype(src.dtypes[0]), np.integer) else 3
        profile["num_threads"] = max(1, threads)  # GDAL compresses blocks in parallel too
        bands = list(range(1, src.count + 1))
        fill = src.nodata if src.nodata is not None else 0
        with atomic_path(dest) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for win in block_windows(grid, block):
                out = np.full((src.count, win.height, win.width), fill, dtype=src.dtypes[0])
                rasterio.warp.reproject(
                    source=rasterio.band(src, bands),
                    destination=out,
                    src_nodata=src.nodata,
                    dst_nodata=src.nodata,
                    dst_transform=grid.transform @ Affine.translation(win.col_off, win.row_off),
                    dst_crs=grid.rio_crs,
                    resampling=resampling,
                    num_threads=max(1, threads),
                    warp_mem_limit=cache_mb,
                    tolerance=tolerance,
                )
                dst.write(out, window=win)
