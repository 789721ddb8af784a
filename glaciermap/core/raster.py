"""The raster engine every stage writes through: a tiled GeoTIFF on the region grid, written
block by block, with band descriptions, units, scales and offsets set through rasterio's own
API, finished (optionally) as a Cloud-Optimized GeoTIFF with overviews by GDAL's COG driver,
and renamed into place atomically (a killed job leaves no half-written product); and block
iteration with a halo (boundless reads beyond the grid edge).
"""

from __future__ import annotations

import contextlib
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import (
    STREAM_CACHE_MB,
    PathLike,
    atomic_path,
    band_names,
    gdal_cache,
    names_unreadable_rasters,
    open_raster,
)

log = logging.getLogger(__name__)

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


def tile_grid(grid: RegionGrid, win: Window) -> RegionGrid:
    """The part of ``grid`` under window ``win``: same CRS and pixel size, shifted origin."""
    return RegionGrid(
        crs=grid.crs,
        transform=grid.transform @ Affine.translation(win.col_off, win.row_off),
        width=int(win.width),
        height=int(win.height),
    )


def tile_parts(
    paths: Sequence[PathLike], windows: Sequence[Sequence[int]]
) -> list[tuple[PathLike, Window]]:
    """(tile file, window) pairs for a gather: the ``windows`` as the workflow lists them,
    ``(row_off, col_off, height, width)`` per tile, in the order of ``paths``."""
    return [
        (path, Window(c0, r0, w, h)) for path, (r0, c0, h, w) in zip(paths, windows, strict=True)
    ]


def tile_tags(path: PathLike, key: str, step: str) -> dict[str, str]:
    """The dataset tags of a processing tile written by a tiled ``step``, which must carry
    ``key`` (the count a gather sums over the region's tiles)."""
    with open_raster(path) as src:
        tags: dict[str, str] = src.tags()
    if key not in tags:
        raise InputDataError(
            f"{path}: no {key} tag (not written by this glaciermap's tiled {step} step); "
            "delete it and rerun"
        )
    return tags


def write_vrt(
    dest: PathLike,
    grid: RegionGrid,
    parts: Sequence[tuple[PathLike, Window]],
    tags: dict[str, str] | None = None,
) -> None:
    """A GDAL VRT mosaic on ``grid`` of tile files, each placed at its window: the region's
    file of a tiled stage (opens in rasterio, GDAL and QGIS like one GeoTIFF). Band count,
    type, names, units, scales, offsets and nodata come from the first tile; tile paths are
    stored relative to the VRT; ``tags``: dataset metadata (``src.tags()``). Written
    atomically."""
    if not parts:
        raise ValueError(f"{dest}: no tiles to mosaic")
    first = Path(parts[0][0])
    with open_raster(first) as src:
        count, dtype, nodata = src.count, src.dtypes[0], src.nodata
        units, scales, offsets = src.units, src.scales, src.offsets
        names = band_names(first)
    gdal_type = {
        "float32": "Float32",
        "float64": "Float64",
        "uint8": "Byte",
        "int16": "Int16",
        "uint16": "UInt16",
        "int32": "Int32",
    }[dtype]
    root = ET.Element("VRTDataset", rasterXSize=str(grid.width), rasterYSize=str(grid.height))
    ET.SubElement(root, "SRS").text = grid.rio_crs.to_wkt()
    if tags:
        meta = ET.SubElement(root, "Metadata")
        for key, value in sorted(tags.items()):
            ET.SubElement(meta, "MDI", key=key).text = value
    t = grid.transform
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e)
    )
    base = Path(dest).resolve().parent
    for b in range(1, count + 1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(b))
        ET.SubElement(band, "Description").text = names[b - 1]
        if nodata is not None:
            ET.SubElement(band, "NoDataValue").text = (
                "nan" if np.isnan(nodata) else repr(float(nodata))
            )
        if units[b - 1]:
            ET.SubElement(band, "UnitType").text = units[b - 1]
        if offsets[b - 1] != 0.0:
            ET.SubElement(band, "Offset").text = repr(float(offsets[b - 1]))
        if scales[b - 1] != 1.0:
            ET.SubElement(band, "Scale").text = repr(float(scales[b - 1]))
        for path, win in parts:
            w, h = int(win.width), int(win.height)
            src_el = ET.SubElement(band, "SimpleSource")
            rel = os.path.relpath(Path(path).resolve(), base)
            ET.SubElement(src_el, "SourceFilename", relativeToVRT="1").text = rel
            ET.SubElement(src_el, "SourceBand").text = str(b)
            ET.SubElement(src_el, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
            ET.SubElement(
                src_el,
                "DstRect",
                xOff=str(int(win.col_off)),
                yOff=str(int(win.row_off)),
                xSize=str(w),
                ySize=str(h),
            )
    ET.indent(root)
    with atomic_path(dest) as tmp:
        tmp.write_text(ET.tostring(root, encoding="unicode") + "\n")
    log.info(
        "%s: VRT of %d tile(s), %d band(s), %d x %d px",
        dest,
        len(parts),
        count,
        grid.width,
        grid.height,
    )


@names_unreadable_rasters
def gather_cog(src_path: PathLike, dest: PathLike, block: int = 1024) -> None:
    """Copy a raster (e.g. the VRT of a stage's tiles) block by block into one
    Cloud-Optimized GeoTIFF on the same grid, with its band names, units, scales, tags."""
    from glaciermap.core.grid import grid_of

    grid = grid_of(src_path)
    with gdal_cache(STREAM_CACHE_MB), open_raster(src_path) as src:
        with grid_writer(
            dest,
            grid,
            band_names(src_path),
            src.dtypes[0],
            src.nodata,
            tags=src.tags(),
            units=list(src.units),
            scales=list(src.scales),
            offsets=list(src.offsets),
            cog=True,
        ) as dst:
            windows = [win for win, _ in halo_windows(grid, block)]
            for n, win in enumerate(windows, 1):
                dst.write(src.read(window=win), window=win)
                log.info("%s: block %d/%d gathered", dest, n, len(windows))
