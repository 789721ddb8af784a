"""Glacier inventories (RGI 6/7, GLIMS or any polygon file) rasterized on the region grid.

Geometries are repaired (``make_valid``), exploded to polygons and reprojected to the grid CRS.
Rasterization burns pixels whose centre lies inside a polygon (``all_touched=False``), which
keeps the rasterized area unbiased with respect to the vector area.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio.features
import rasterio.windows
import shapely
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import PathLike, outline_layer
from glaciermap.core.raster import grid_writer, halo_windows

log = logging.getLogger(__name__)

ID_COLUMNS = ("RGIId", "rgi_id", "glac_id", "GLIMSId", "glims_id", "id")


def read_inventory(
    path: PathLike,
    crs: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of an inventory, valid, in ``crs`` (if given), with an ``inventory_id`` column.

    ``bounds`` (left, bottom, right, top in ``crs``): only the polygons that meet the box
    enclosing them in the file's CRS (two boxes where it crosses the antimeridian), filtered
    by OGR while reading (with the file's spatial index where it has one), so a region takes
    its own glaciers from an RGI region file or a global inventory, not the whole file; the
    polygons keep their order in the file. Where the box cannot be made, nothing is
    filtered."""
    if not Path(path).exists():
        raise MissingInputError(
            f"{path}: inventory not found; put the region's RGI/GLIMS outlines there (see "
            "README 'Real data')"
        )
    try:
        layer = outline_layer(path)
        spatial: dict[str, Any] = {}
        if bounds is not None and crs is not None:
            spatial = _filter_in_file(path, layer, crs, bounds)  # never raises
        gdf = gpd.read_file(path, layer=layer, **spatial)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        detail = " ".join(str(exc).split(";")[0].split())[:160]
        raise InputDataError(
            f"{path}: not a readable vector file ({detail}); replace it with a GeoPackage or "
            "shapefile of the outlines"
        ) from exc
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


def _filter_in_file(
    path: PathLike, layer: str | None, crs: str, bounds: tuple[float, float, float, float]
) -> dict[str, Any]:
    """The spatial filter (``bbox`` or ``mask``, in the CRS of the file's ``layer``) enclosing
    ``bounds`` (in ``crs``; edges densified): two boxes where it crosses the antimeridian of a
    geographic CRS; none where the file has no CRS (refused after reading), cannot be read
    (refused by the read), or the bounds do not transform (read whole)."""
    import pyogrio
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds

    try:
        file_crs = pyogrio.read_info(path, layer=layer)["crs"]
        if not file_crs:
            return {}
        left, bottom, right, top = transform_bounds(crs, file_crs, *bounds, densify_pts=21)
        geographic = CRS.from_user_input(file_crs).is_geographic
    except Exception:  # an unreadable file or an odd CRS: the read itself says what is wrong
        return {}
    if left <= right:
        return {"bbox": (float(left), float(bottom), float(right), float(top))}
    if not geographic:
        return {}
    east = shapely.box(float(left), float(bottom), 180.0, float(top))
    west = shapely.box(-180.0, float(bottom), float(right), float(top))
    return {"mask": shapely.MultiPolygon([east, west])}


def rasterize_inventory(path: PathLike, grid: RegionGrid) -> NDArray[np.uint8]:
    """1 inside glaciers, 0 elsewhere, on the grid."""
    gdf = read_inventory(path, grid.crs, grid.bounds)
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
    inventory: PathLike,
    grid_path: PathLike,
    dest: PathLike,
    band: str = "glacier",
    block: int = 2048,
) -> None:
    """Polygons (an inventory, or debris-cover polygons with ``band="debris"``) rasterized
    on the region grid: 1 inside, 0 outside."""
    grid = RegionGrid.load(grid_path)
    gdf = read_inventory(inventory, grid.crs, grid.bounds)
    if band == "glacier" and not gdf.intersects(shapely.box(*grid.bounds)).any():
        import pyogrio

        info = pyogrio.read_info(
            inventory, layer=outline_layer(inventory), force_feature_count=True
        )
        raise InputDataError(
            f"{inventory}: no glacier polygon ({info['features']} features in all) lies in the "
            f"region {[round(b) for b in grid.bounds]} ({grid.crs}): a model cannot learn from "
            "it nor be scored against it; check the file's CRS and extent, or give the region "
            "another inventory"
        )
    n = 0
    with grid_writer(dest, grid, [band], "uint8", None) as dst:
        for win, part in rasterized_blocks(gdf, grid, block):
            n += int(part.sum())
            dst.write(part[None], window=win)
    log.info("labels: %.2f km2 of %s", n * grid.resolution**2 / 1e6, band)


def rasterized_blocks(
    gdf: gpd.GeoDataFrame | PathLike, grid: RegionGrid, block: int = 2048
) -> Iterator[tuple[Window, NDArray[np.uint8]]]:
    """The polygons burnt block by block (pixel centres inside, as :func:`rasterize_inventory`
    over the whole grid), so memory is one block whatever the region size. ``gdf``: the
    polygons (each block takes those its bounds intersect, found with the frame's spatial
    index), or a vector file, of which each block reads only the polygons near it
    (:func:`read_inventory` with the block's bounds), so the polygons are never all in
    memory either (for files with a spatial index, as GeoPackages written here have)."""
    frame = gdf if isinstance(gdf, gpd.GeoDataFrame) else None
    sindex = frame.sindex if frame is not None and len(frame) else None
    for win, _ in halo_windows(grid, block):
        h, w = int(win.height), int(win.width)
        tr = rasterio.windows.transform(win, grid.transform)
        left, top = tr.c, tr.f
        bounds = (left, top + h * tr.e, left + w * tr.a, top)
        if frame is None:
            geoms = read_inventory(gdf, grid.crs, bounds).geometry.values
        elif sindex is None:
            geoms = []
        else:
            geoms = frame.geometry.values[sindex.query(shapely.box(*bounds))]
        if not len(geoms):
            yield win, np.zeros((h, w), dtype=np.uint8)
            continue
        yield (
            win,
            rasterio.features.rasterize(
                ((g, 1) for g in geoms),
                out_shape=(h, w),
                transform=tr,
                fill=0,
                dtype="uint8",
                all_touched=False,
            ),
        )
