"""The notebook API: georeferenced in, georeferenced out.

Every raster product of the workflow is a GeoTIFF whose band descriptions are its layer
names; here it opens as an :class:`xarray.DataArray` with a named ``band`` coordinate and the
CRS and transform through rioxarray (``da.rio.crs``). The functions run the same engine as
the workflow (block-wise prediction, the outline clean-up and per-glacier split), on a
DataArray or a file::

    import glaciermap as gm

    features = gm.open_raster("results/features/demo_2021.vrt")
    features.sel(band="ndsi").plot()
    probability = gm.predict(features, "results/models/demo/unet_optical_dem_sar")
    glaciers = gm.outlines(probability, inventory="resources/demo/inventory/demo_2021.gpkg")
    change = gm.changes(gm.read_outlines("outlines/demo_2005.gpkg"), glaciers, 2005, 2021)

DataArrays passed in are written to a temporary GeoTIFF first (so a notebook gets the
workflow's numbers exactly); results are loaded into memory, so keep them region-sized
only for regions that fit in memory (the workflow itself never holds a region).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rioxarray
import xarray as xr

from glaciermap.core.errors import InputDataError
from glaciermap.core.io import PathLike, band_names, names_unreadable_rasters

Raster = xr.DataArray | PathLike


@names_unreadable_rasters
def open_raster(path: PathLike, load: bool = False) -> xr.DataArray:
    """A product GeoTIFF as a DataArray ``(band, y, x)``: band coordinate = layer names,
    nodata as NaN, CRS/transform via ``.rio``; lazily read unless ``load``. With ``load`` a
    truncated or corrupt file is one :class:`~glaciermap.core.errors.InputDataError` naming
    it; read lazily, GDAL's own error appears when the pixels are first used."""
    names = band_names(path)
    da = rioxarray.open_rasterio(path, masked=True)
    if not isinstance(da, xr.DataArray):  # pragma: no cover (a multi-subdataset file)
        raise InputDataError(f"{path}: not a single raster; open one subdataset")
    da = da.assign_coords(band=names)
    da.name = Path(path).stem
    return da.load() if load else da


open_features = open_raster


@contextmanager
def _as_file(raster: Raster, tmp: Path, name: str) -> Iterator[Path]:
    """A path for ``raster``: itself if a file, else the DataArray written as GeoTIFF with
    its band names as descriptions."""
    if not isinstance(raster, xr.DataArray):
        yield Path(raster)
        return
    if "band" not in raster.dims or raster.rio.crs is None:
        raise InputDataError(
            f"{name}: need a DataArray (band, y, x) with a CRS; open it with glaciermap."
            "open_raster or set one with .rio.write_crs"
        )
    path = tmp / f"{name}.tif"
    da = raster.astype("float32")
    da.rio.write_nodata(np.nan, encoded=False, inplace=True)
    da.attrs["long_name"] = tuple(str(b) for b in raster["band"].values)
    da.rio.to_raster(path, tiled=True)
    yield path


def predict(
    features: Raster,
    model_dir: PathLike,
    window: int = 256,
    overlap: int = 64,
    device: str = "auto",
    threads: int = 1,
) -> xr.DataArray:
    """Glacier probability (and, for ensembles, uncertainty and each member) of a trained
    model over a feature stack, by the workflow's sliding-window prediction."""
    from glaciermap.ml.predict import sliding_window_predict

    with tempfile.TemporaryDirectory(prefix="glaciermap-") as d:
        tmp = Path(d)
        with _as_file(features, tmp, "features") as src:
            dest = tmp / "probability.tif"
            sliding_window_predict(
                src, model_dir, dest, window, overlap, device=device, threads=threads
            )
            return open_raster(dest, load=True)


def outlines(
    probability: Raster,
    region: str = "notebook",
    year: int = 0,
    inventory: PathLike | None = None,
    dem: PathLike | None = None,
    layer: str = "glaciers",
    **params: Any,
) -> gpd.GeoDataFrame:
    """Glacier outlines of a probability raster (polygonize: ``threshold``, ``smooth_m``,
    ``min_area_km2``, ...), split into glaciers along the inventory's divides or the DEM's
    basins; ``layer="complexes"`` returns the glacier complexes."""
    from glaciermap.products.outlines import polygonize_probability

    with tempfile.TemporaryDirectory(prefix="glaciermap-") as d:
        tmp = Path(d)
        with _as_file(probability, tmp, "probability") as src:
            dest = tmp / "outlines.gpkg"
            polygonize_probability(src, dest, region, year, inventory=inventory, dem=dem, **params)
            return read_outlines(dest, layer)


def read_outlines(path: PathLike, layer: str = "glaciers") -> gpd.GeoDataFrame:
    """One layer of an outlines GeoPackage (``glaciers`` or ``complexes``)."""
    return gpd.read_file(path, layer=layer)


def changes(
    outlines1: gpd.GeoDataFrame, outlines2: gpd.GeoDataFrame, year1: int, year2: int
) -> dict[str, gpd.GeoDataFrame]:
    """Per-glacier-complex area change between two epochs' outlines (the change product's
    layers, e.g. ``complexes`` with area and change columns)."""
    from glaciermap.products.changes import glacier_changes

    layers, _ = glacier_changes(outlines1, outlines2, year1, year2)
    return layers
