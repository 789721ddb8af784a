"""Warping any raster onto a region grid.

Continuous layers use bilinear resampling (or ``average`` when downsampling by a large
factor); masks and class layers use ``nearest``. Warping is done by GDAL, multi-threaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rasterio
import rasterio.warp
from numpy.typing import NDArray
from rasterio.enums import Resampling

from glaciermap.grid import RegionGrid
from glaciermap.io import PathLike, open_raster

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
