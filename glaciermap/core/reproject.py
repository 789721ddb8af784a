"""Warping any raster onto a region grid.

Continuous layers use bilinear resampling (or ``average`` when downsampling by a large
factor); masks and class layers use ``nearest``. Warping is done by GDAL, multi-threaded,
reading only the source window a destination window needs (see :func:`warp_window`).

Every warp sets GDAL's resampling scales ``XSCALE``/``YSCALE`` (:func:`warp_scale`) from the
source and grid resolutions. Left unset, GDAL estimates them per warp chunk as the ratio of
the chunk's size to its source window's; when the mapping rotates the pixels (a neighbouring
UTM zone, a geographic source) that window is the bounding box of a rotated chunk, larger by an
amount that depends on the chunk's shape, so bilinear and cubic kernels widen from chunk to
chunk and the result depends on how the output is divided into blocks (gdalwarp differs from
itself by 6 DN between two memory limits on the uint16 scene of
``benchmarks/reproject_vs_gdalwarp.py``). With fixed scales it does not.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import PathLike, atomic_path, gdal_cache, open_raster

CONTINUOUS = Resampling.bilinear
MAX_AVERAGE_ROTATION_DEG = 10.0
"""Largest rotation between a source and the grid at which a coarser grid takes the area
average (:func:`continuous_resampling`). GDAL's average of a rotated source departs from the
true area average as the angle grows (on 10 m noise onto 30 m: 0.03 at 2 degrees, 0.08 at 10,
0.21 at 30, 0.34 at 45), while bilinear sampling stays ~0.14-0.18 from it at any angle. 10
degrees admits a scene of the neighbouring UTM zone at any latitude up to 80 degrees (6 x
sin(latitude): 3.5 degrees in the Karakoram, 4.3 in the Alps, 5.9 on Svalbard)."""
CATEGORICAL = Resampling.nearest


def footprint_overlaps(src: DatasetReader, grid: RegionGrid) -> bool:
    """Whether a raster's footprint intersects the grid. A raster without a CRS is an error:
    it cannot be placed on any grid (it is never assumed to be in the grid's CRS)."""
    if src.crs is None:
        raise InputDataError(
            f"{src.name}: has no coordinate reference system; re-export it as a georeferenced "
            "GeoTIFF (or assign one with gdal_edit.py -a_srs)"
        )
    w, s, e, n = rasterio.warp.transform_bounds(src.crs, grid.rio_crs, *src.bounds)
    left, bottom, right, top = grid.bounds
    return w < right and e > left and s < top and n > bottom


def _grid_centre_in_source(
    src_crs: CRS, src_transform: Affine, grid: RegionGrid
) -> tuple[tuple[float, float], ...] | None:
    """Source (col, row) of the grid's centre pixel and of its right and lower neighbours;
    None where they do not transform."""
    cx, cy = grid.width / 2, grid.height / 2
    pts = [grid.transform @ (c, r) for c, r in ((cx, cy), (cx + 1, cy), (cx, cy + 1))]
    try:
        xs, ys = rasterio.warp.transform(
            grid.rio_crs, src_crs, [p[0] for p in pts], [p[1] for p in pts]
        )
    except Exception:  # no CRS, or PROJ fails
        return None
    inv = ~src_transform
    out = tuple(tuple(inv @ (x, y)) for x, y in zip(xs, ys, strict=True))
    if not all(math.isfinite(v) for p in out for v in p):
        return None
    return out


def warp_scale(src_crs: CRS, src_transform: Affine, grid: RegionGrid) -> tuple[float, float] | None:
    """GDAL's ``XSCALE``, ``YSCALE`` for warping a source onto ``grid``: grid pixels per
    source pixel along the source's x and y axes (1: same resolution, 0.5: downsampling by 2,
    above 1: upsampling), from the local mapping at the grid centre.

    The scale along the source x axis is ``1 / |grad(source column)|`` per grid pixel step, so
    a pure rotation gives 1 whatever its angle. None where the centre does not transform.
    """
    return _scale_of(_grid_centre_in_source(src_crs, src_transform, grid))


def _scale_of(m: tuple[tuple[float, float], ...] | None) -> tuple[float, float] | None:
    """:func:`warp_scale` from :func:`_grid_centre_in_source` (None: let GDAL estimate the
    scale per chunk)."""
    if m is None:
        return None
    (c0, r0), (c1, r1), (c2, r2) = m
    dcol, drow = math.hypot(c1 - c0, c2 - c0), math.hypot(r1 - r0, r2 - r0)
    if dcol <= 0 or drow <= 0:
        return None
    return float(f"{1 / dcol:.6g}"), float(f"{1 / drow:.6g}")


def grid_rotation_deg(src_crs: CRS, src_transform: Affine, grid: RegionGrid) -> float | None:
    """Angle (degrees) between the grid's rows and the source's rows at the grid centre (0
    for a source in the grid's CRS and orientation, 3.5-6 for a scene of the next UTM zone)."""
    return _rotation_of(_grid_centre_in_source(src_crs, src_transform, grid))


def _rotation_of(m: tuple[tuple[float, float], ...] | None) -> float | None:
    if m is None:
        return None
    (c0, r0), (c1, r1), _ = m
    return abs(math.degrees(math.atan2(r1 - r0, c1 - c0)))


def warp_options(src: DatasetReader, grid: RegionGrid) -> dict[str, str]:
    """Warp options fixing the resampling scale (``XSCALE``, ``YSCALE``) of ``src`` onto
    ``grid``, as strings for GDAL (``gdalwarp -wo``); empty if it cannot be computed."""
    scale = warp_scale(src.crs, src.transform, grid)
    if scale is None:
        return {}
    return {"XSCALE": repr(scale[0]), "YSCALE": repr(scale[1])}


def _on_grid(src: DatasetReader, grid: RegionGrid) -> bool:
    return bool(
        src.crs == grid.rio_crs
        and src.transform.almost_equals(grid.transform)
        and (src.height, src.width) == grid.shape
    )


def warp_window(
    src: DatasetReader,
    grid: RegionGrid,
    window: Window | None = None,
    resampling: Resampling = CONTINUOUS,
    bands: Sequence[int] | None = None,
    src_nodata: float | None = None,
    dst_dtype: str = "float32",
    dst_nodata: float = np.nan,
    threads: int = 1,
    options: Mapping[str, str] | None = None,
) -> NDArray[np.generic]:
    """Warp bands (1-based, all by default) of the open dataset ``src`` onto ``window`` of
    ``grid`` (the whole grid by default); ``(band, row, col)``.

    GDAL reads only the source blocks under the window's footprint (plus the kernel's
    margin), so memory and reading time follow the window, not the source's size. Pixels
    outside the source or equal to its nodata value become ``dst_nodata``. ``options``: warp
    options, :func:`warp_options` by default (pass them to skip recomputing per window).
    """
    win = window if window is not None else Window(0, 0, grid.width, grid.height)
    rows, cols = int(win.height), int(win.width)
    idx = list(bands) if bands is not None else list(range(1, src.count + 1))
    nodata = src.nodata if src_nodata is None else src_nodata
    out = np.full((len(idx), rows, cols), dst_nodata, dtype=dst_dtype)
    if _on_grid(src, grid):  # no warp needed: read the window directly
        data = src.read(idx, window=win)
        if nodata is not None:
            mask = data == nodata if not np.isnan(nodata) else np.isnan(data)
            data = np.where(mask, dst_nodata, data)
        out[:] = data.astype(dst_dtype)
        return out
    opts = dict(warp_options(src, grid) if options is None else options)
    dst_transform = grid.transform @ Affine.translation(win.col_off, win.row_off)
    for i, b in enumerate(idx):
        rasterio.warp.reproject(
            source=rasterio.band(src, b),
            destination=out[i],
            src_nodata=nodata,
            dst_transform=dst_transform,
            dst_crs=grid.rio_crs,
            dst_nodata=dst_nodata,
            resampling=resampling,
            num_threads=max(1, threads),
            **opts,
        )
    return out


def reproject_to_grid(
    path: PathLike,
    grid: RegionGrid,
    resampling: Resampling = CONTINUOUS,
    bands: Sequence[int] | None = None,
    src_nodata: float | None = None,
    dst_dtype: str = "float32",
    dst_nodata: float = np.nan,
    threads: int = 1,
    window: Window | None = None,
) -> NDArray[np.generic]:
    """Warp bands (1-based, all by default) of ``path`` onto ``grid`` (or ``window`` of it).

    Pixels outside the source or equal to its nodata value become ``dst_nodata``.
    Returns ``(band, row, col)``; see :func:`warp_window`.
    """
    with open_raster(path) as src:
        return warp_window(
            src, grid, window, resampling, bands, src_nodata, dst_dtype, dst_nodata, threads
        )


def shape_windows(
    shape: tuple[int, int], block: int = 1024, rows: int | None = None
) -> Iterator[Window]:
    """Windows of at most ``block`` columns by ``rows`` (default ``block``) rows covering an
    array of ``shape`` (rows, cols), row by row."""
    height, width = shape
    rows = block if rows is None else rows
    for r0 in range(0, height, rows):
        for c0 in range(0, width, block):
            yield Window(c0, r0, min(block, width - c0), min(rows, height - r0))


def block_windows(grid: RegionGrid, block: int = 1024, rows: int | None = None) -> Iterator[Window]:
    """Windows of at most ``block`` columns by ``rows`` (default ``block``) rows covering the
    grid, row by row."""
    return shape_windows(grid.shape, block, rows)


def continuous_resampling(src: DatasetReader, grid: RegionGrid) -> Resampling:
    """Resampling of a continuous layer (reflectance) onto ``grid``: bilinear
    (:data:`CONTINUOUS`) where the grid is as fine as the source or finer, the area average
    where it is coarser in both axes (a 30 m grid from Sentinel-2's 10 m bands).

    The average is what a coarser sensor measures, without a bilinear kernel's aliasing, and
    it does not depend on the part of the grid a warp covers: GDAL sizes a downsampling
    bilinear kernel per warped chunk, so processing tiles of a 30 m grid differed at their
    edges (by up to 0.026 reflectance on noise) from the whole-grid warp.
    Only for sources in (nearly) the grid's orientation, within
    :data:`MAX_AVERAGE_ROTATION_DEG`: GDAL's average of a rotated source is far from the true
    area average (0.21 reflectance at 30 degrees, 0.34 at 45, on noise), worse than bilinear.
    """
    m = _grid_centre_in_source(src.crs, src.transform, grid)  # one transformation for both
    scale, turn = _scale_of(m), _rotation_of(m)
    coarser = scale is not None and max(scale) < 0.99
    if coarser and turn is not None and turn <= MAX_AVERAGE_ROTATION_DEG:
        return Resampling.average
    return CONTINUOUS


@contextlib.contextmanager
def warped(
    path: PathLike,
    grid: RegionGrid,
    resampling: Resampling | None = CONTINUOUS,
    src_nodata: float | None = None,
    threads: int = 1,
    dtype: str | None = None,
    mem_limit_mb: int = 256,
) -> Iterator[WarpedVRT]:
    """A virtual dataset of ``path`` warped onto ``grid``: read any window from it.

    GDAL warps only what a read needs, with ``threads`` worker threads and at most
    ``mem_limit_mb`` of warp buffers, so memory is bounded whatever the scene size.
    Pixels outside the source or equal to its nodata read as the VRT nodata. ``resampling``
    None: :func:`continuous_resampling` of the source onto the grid.

    GDAL warps such a dataset in chunks of its blocks (512 x 128 px) and ignores the
    ``XSCALE``/``YSCALE`` options there, sizing the kernel per chunk instead; a dataset on
    another grid (a processing tile's) chunks differently, so open it on the region's grid
    and read the tile's window. While the dataset is open, ``GDAL_VRT_WARP_USE_DATASET_RASTERIO``
    is off: GDAL would otherwise warp a single-band read larger than a block as one chunk
    (up to 5 DN apart between 768 and 1024 px reads across UTM zones), so that results
    depend on the read windows; block by block, they do not.
    """
    with (
        rasterio.Env(GDAL_VRT_WARP_USE_DATASET_RASTERIO="NO"),
        open_raster(path) as src,
    ):
        if resampling is None:
            resampling = continuous_resampling(src, grid)
        nodata = src.nodata if src_nodata is None else src_nodata
        opts: dict[str, object] = {}
        if nodata is not None:
            opts.update(src_nodata=nodata, nodata=nodata)
        elif dtype is not None and np.dtype(dtype).kind == "f":
            opts["nodata"] = np.nan  # no source nodata: only pixels outside it are missing
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
            warp_extras={"NUM_THREADS": max(1, threads), **warp_options(src, grid)},
            **opts,
        ) as vrt:
            yield vrt


def row_interpolation_error(src: DatasetReader, grid: RegionGrid, width: int) -> float:
    """Largest distance (source pixels) between the exact source position of a grid pixel and
    its linear interpolation between the ends of a ``width``-pixel row: the error of GDAL's
    approximate transformer over such rows (checked at the top, middle and bottom rows)."""
    width = min(width, grid.width)
    c0 = (grid.width - width) / 2
    cols = [c0, c0 + width / 2, c0 + width]
    worst = 0.0
    for row in (0.0, grid.height / 2, float(grid.height)):
        pts = [grid.transform @ (c, row) for c in cols]
        try:
            xs, ys = rasterio.warp.transform(
                grid.rio_crs, src.crs, [p[0] for p in pts], [p[1] for p in pts]
            )
        except Exception:  # cannot tell: assume the worst
            return math.inf
        (a, ar), (m, mr), (b, br) = (~src.transform @ (x, y) for x, y in zip(xs, ys, strict=True))
        worst = max(worst, math.hypot(m - (a + b) / 2, mr - (ar + br) / 2))
    return worst if math.isfinite(worst) else math.inf


def reproject_file(
    path: PathLike,
    grid: RegionGrid,
    dest: PathLike,
    resampling: Resampling = CONTINUOUS,
    threads: int = 1,
    block: int | None = None,
    block_rows: int = 2048,
    cache_mb: int = 256,
    max_error: float = 0.01,
) -> None:
    """Warp every band of ``path`` onto ``grid`` into a tiled GeoTIFF, block by block.

    Each output block (``block`` columns by ``block_rows`` rows) is warped by GDAL's
    multi-threaded chunked warper (as ``gdalwarp -multi``) from the source dataset, which reads
    only the source window it needs. The data type and nodata of the source are kept. Peak
    memory is one block of all bands, the warp buffers and GDAL's block cache (``cache_mb``),
    independent of the scene and grid sizes.

    rasterio's warp always uses GDAL's approximate coordinate transformer with a 0.125 pixel
    error threshold (it has no setting for it: a ``tolerance`` argument is silently ignored).
    It interpolates the transformation along each row of a block, so its error grows with
    the square of the block's width: across UTM zones it is 0.004 pixel over 512 columns and
    0.07 over 2048. By default ``block`` is the widest of 2048, 1024, 512 and 256 columns
    whose error (:func:`row_interpolation_error`) is at most ``max_error`` pixel, so that the
    result is that of an exact transformation (``gdalwarp -et 0``) within 1 DN; a warp within
    one UTM zone keeps 2048. The resampling scale is fixed (:func:`warp_options`), so the
    result does not depend on the blocks otherwise.
    """
    with gdal_cache(cache_mb), open_raster(path) as src:
        profile = grid.profile(count=src.count, dtype=src.dtypes[0], nodata=src.nodata)
        profile["predictor"] = 2 if np.issubdtype(np.dtype(src.dtypes[0]), np.integer) else 3
        profile["num_threads"] = max(1, threads)  # GDAL compresses blocks in parallel too
        bands = list(range(1, src.count + 1))
        fill = src.nodata if src.nodata is not None else 0
        opts = warp_options(src, grid)
        if block is None:
            fits = [
                w for w in (2048, 1024, 512) if row_interpolation_error(src, grid, w) <= max_error
            ]
            block = fits[0] if fits else 256
        with atomic_path(dest) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            for win in block_windows(grid, block, block_rows):
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
                    **opts,
                )
                dst.write(out, window=win)
