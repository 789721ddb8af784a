"""Glacier inventories (RGI 6/7, GLIMS or any polygon file) rasterized on the region grid.

Geometries are repaired (``make_valid``), exploded to polygons and reprojected to the grid CRS.
Rasterization burns pixels whose centre lies inside a polygon (``all_touched=False``), which
keeps the rasterized area unbiased with respect to the vector area.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from numpy.typing import NDArray

from glaciermap.core.errors import InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.core.io import PathLike

log = logging.getLogger(__name__)

ID_COLUMNS = ("RGIId", "rgi_id", "glac_id", "GLIMSId", "glims_id", "id")


def read_inventory(path: PathLike, crs: str | None = None) -> gpd.GeoDataFrame:
    """Polygons of an inventory, valid, in ``crs`` (if given), with an ``inventory_id`` column."""
    if not Path(path).exists():
        raise MissingInputError(f"{path}: inventory not found; see README 'Real data'")
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise InputDataError(f"{path}: not a readable vector file ({exc})") from exc
    if gdf.crs is None:
        raise InputDataError(f"{path}: inventory has no CRS; assign one (e.g. EPSG:4326)")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].copy()
    gdf["geometry"] = shapely.make_valid(gdf.geometry.values)
    gdf = gdf.explode(index_parts=False)
    gdf = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    idcol = next((c for c in ID_COLUMNS if c in gdf.columns), None)
    gdf["inventory_id"] = gdf[idcol].astype(str) if idcol else [str(i) for i in range(len(gdf))]
    if crs is not None:
        gdf = gdf.to_crs(crs)
    return gdf[["inventory_id", "geometry"]].reset_index(drop=True)


def rasterize_inventory(path: PathLike, grid: RegionGrid) -> NDArray[np.uint8]:
    """1 inside glaciers, 0 elsewhere, on the grid."""
    gdf = read_inventory(path, grid.crs)
    if gdf.empty:
        return np.zeros(grid.shape, dtype=np.uint8)
    return rasterio.features.rasterize(
        ((g, 1) for g in gdf.geometry),
        out_shape=grid.shape,
        transform=grid.transform,
        fill=0,
        dtype="uint8",
        all_touched=False,
    )


def build_labels(
    inventory: PathLike, grid_path: PathLike, dest: PathLike, band: str = "glacier"
) -> None:
    """Polygons (an inventory, or debris-cover polygons with ``band="debris"``) rasterized
    on the region grid: 1 inside, 0 outside."""
    grid = RegionGrid.load(grid_path)
    labels = rasterize_inventory(inventory, grid)
    log.info("labels: %.2f km2 of %s", labels.sum() * grid.resolution**2 / 1e6, band)
    write_raster(dest, labels, grid, [band], nodata=None)
