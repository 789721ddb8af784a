"""From a probability raster to glacier outlines.

Steps: threshold; morphological opening then closing (``smooth_px`` iterations, removes
speckle and closes narrow gaps); removal of patches smaller than ``min_area_km2``; filling of
holes smaller than ``max_hole_km2``; vectorisation of each connected patch; ``make_valid``;
optional simplification (``simplify_m``, topology preserving per polygon).

Attributes: ``glacier_id, area_km2, perimeter_km, mean_probability, region, year, sensor,
acquisition_dates`` and ``inventory_id`` of the inventory outline that overlaps most
(when an inventory is given). Output CRS: that of the region grid.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from numpy.typing import NDArray
from scipy import ndimage
from shapely.geometry import shape

from glaciermap.grid import grid_of
from glaciermap.io import PathLike, atomic_path, read_bands
from glaciermap.labels import read_inventory

log = logging.getLogger(__name__)

COLUMNS = [
    "glacier_id",
    "area_km2",
    "perimeter_km",
    "mean_probability",
    "region",
    "year",
    "sensor",
    "acquisition_dates",
    "inventory_id",
]


def clean_mask(
    mask: NDArray[np.bool_],
    pixel_area_m2: float,
    smooth_px: int = 1,
    min_area_km2: float = 0.01,
    max_hole_km2: float = 0.01,
) -> NDArray[np.bool_]:
    """Morphological clean-up of a binary glacier mask."""
    m = mask.copy()
    if smooth_px > 0:
        m = ndimage.binary_opening(m, iterations=smooth_px)
        m = ndimage.binary_closing(m, iterations=smooth_px, border_value=0)
    min_px = min_area_km2 * 1e6 / pixel_area_m2
    labels, n = ndimage.label(m)
    if n:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_px
        small[0] = False
        m &= ~small[labels]
    holes = ndimage.binary_fill_holes(m) & ~m
    hl, hn = ndimage.label(holes)
    if hn:
        hsizes = np.bincount(hl.ravel())
        fill = hsizes < max_hole_km2 * 1e6 / pixel_area_m2
        fill[0] = False
        m |= fill[hl]
    return np.asarray(m)


def polygonize_probability(
    probability: PathLike,
    dest: PathLike,
    region: str,
    year: int,
    threshold: float = 0.5,
    smooth_px: int = 1,
    min_area_km2: float = 0.01,
    max_hole_km2: float = 0.01,
    simplify_m: float = 0.0,
    sensor: str = "",
    acquisition_dates: Sequence[str] = (),
    inventory: PathLike | None = None,
) -> gpd.GeoDataFrame:
    """Write glacier outlines (GeoPackage, one polygon per glacier) and return them."""
    grid = grid_of(probability)
    prob, _ = read_bands(probability, ["probability"])
    p = prob[0]
    mask = clean_mask(
        np.nan_to_num(p, nan=0.0) >= threshold,
        grid.resolution**2,
        smooth_px,
        min_area_km2,
        max_hole_km2,
    )
    labels, _ = ndimage.label(mask)
    geoms: dict[int, list[shapely.Geometry]] = {}
    for geom, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=mask, transform=grid.transform
    ):
        geoms.setdefault(int(value), []).append(shape(geom))
    ids = sorted(geoms)
    polys = [shapely.make_valid(shapely.union_all(geoms[i])) for i in ids]
    if simplify_m > 0:
        polys = [shapely.make_valid(g.simplify(simplify_m, preserve_topology=True)) for g in polys]
    mean_p = ndimage.mean(np.nan_to_num(p), labels, ids) if ids else []
    gdf = gpd.GeoDataFrame(
        {
            "glacier_id": [f"{region}_{year}_{k:05d}" for k in range(1, len(ids) + 1)],
            "area_km2": [g.area / 1e6 for g in polys],
            "perimeter_km": [g.length / 1e3 for g in polys],
            "mean_probability": np.asarray(mean_p, dtype=float),
            "region": region,
            "year": int(year),
            "sensor": sensor,
            "acquisition_dates": ",".join(acquisition_dates),
            "inventory_id": None,
        },
        geometry=gpd.GeoSeries(polys, crs=grid.rio_crs),
        crs=grid.rio_crs,
    )
    if inventory is not None and len(gdf):
        inv = read_inventory(inventory, grid.crs)
        if len(inv):
            gdf["inventory_id"] = _best_overlap(gdf, inv)
    gdf = gdf[[*COLUMNS, "geometry"]]
    with atomic_path(dest) as tmp:
        gdf.to_file(tmp, driver="GPKG", layer="glaciers")
    log.info("outlines: %d glaciers, %.2f km2", len(gdf), float(gdf["area_km2"].sum()))
    return gdf


def _best_overlap(outlines: gpd.GeoDataFrame, inventory: gpd.GeoDataFrame) -> list[str | None]:
    """For each outline, the inventory id with the largest overlap (None if none)."""
    inter = gpd.overlay(
        outlines[["glacier_id", "geometry"]].reset_index(drop=True),
        inventory[["inventory_id", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    if inter.empty:
        return [None] * len(outlines)
    inter["a"] = inter.geometry.area
    best = inter.sort_values("a").groupby("glacier_id")["inventory_id"].last()
    return [best.get(g) for g in outlines["glacier_id"]]
