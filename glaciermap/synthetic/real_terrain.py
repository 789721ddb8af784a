"""A demo world over a real DEM with real glacier outlines.

Instead of the fractal terrain and the balance-flux glaciers of
:func:`glaciermap.synthetic.world.build_world`, :func:`build_world_from_dem` takes

* the terrain from any single-band GeoTIFF DEM in any CRS: e.g. a Copernicus GLO-30 / GLO-90
  tile or mosaic (ESA / Airbus), SRTM (NASA/USGS, or its CGIAR-CSI void-filled processing),
  ASTER GDEM, NASADEM or a national lidar DEM (a VRT of tiles works too). It is warped
  (bilinear) onto the world's physics grid straight from the file's band, so only the part
  over the world is read;
* the glacier cover from a vector file of glacier polygons in any CRS: e.g. the Randolph
  Glacier Inventory (RGI 5/6/7, RGI Consortium), GLIMS outlines or a national inventory. Only
  the polygons over the world are read (a bounding-box filter); they are rasterised on the
  physics grid as the share of each cell they cover, smoothed a little, so the rendered
  ``glacier_cover > 0.5`` follows the outlines. An epoch's ``retreat_m`` shrinks its
  glaciers by an inward buffer of the outlines (a uniform retreat of every margin).

The rest is the world's physics, unchanged: the ELA of each epoch (config ``ela_m``) sets the
snow / firn / bare-ice zones on the glaciers, the debris-covered tongues below it and the
seasonal snow off them; illumination, cast shadows, sky view, clouds and the SAR geometry come
from the real DEM. Without ``ela_m`` an epoch's ELA is the median elevation of its glacier
cells, the usual proxy of a glacier's balanced-budget ELA (Braithwaite & Raper 2009, Ann.
Glaciol. 50). The real terrain has no lakes (none are mapped) and, unlike the fractal world,
neither synthetic fine relief nor irregular synthetic margins: the rendered elevation is the
DEM (cubic interpolation of the physics grid) and the glacier margins are the outlines.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.errors
import rasterio.features
import shapely
from affine import Affine
from numpy.typing import NDArray
from rasterio.warp import Resampling, reproject
from scipy import ndimage
from shapely.geometry import box

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.synthetic.layout import MAX_PHYS_CELLS, SEASONAL_SNOW
from glaciermap.synthetic.world import EpochState, World, physics_grid, sky_view_factor

log = logging.getLogger(__name__)

MIN_DEM_COVERAGE = 0.95
"""Least share of the region's physics cells the DEM must cover (the rest is filled)."""

VOID_BELOW_M = -1000.0
"""DEM values below this are voids (the -32768 / -32767 / -9999 fills of unflagged DEMs)."""

COVER_SUPERSAMPLE = 4
"""Outlines are rasterised on a grid this many times finer than the physics grid, per axis,
so each physics cell holds the share of it that they cover."""

COVER_SMOOTHING_CELLS = 0.5
"""Gaussian smoothing (physics cells, 1 sigma) of the rasterised glacier cover."""


@dataclass
class RealTerrainWorld(World):
    """A :class:`~glaciermap.synthetic.world.World` whose terrain is a real DEM and whose
    glaciers are real outlines: the rendered elevation is the DEM itself (no synthetic fine
    relief) and the glacier cover is that of the outlines (no synthetic margin noise).

    ``outlines`` keeps the real polygons (grid CRS) with their inventory id per row
    (``glacier_id``) and ``retreat_m`` the inward buffer of each year, so the written
    inventory splits the rendered cover along the real ice divides and keeps the real ids."""

    outlines: gpd.GeoDataFrame | None = None
    retreat_m: dict[int, float] = field(default_factory=dict)

    def outlines_of(self, year: int) -> gpd.GeoDataFrame | None:
        """The real outlines of ``year`` (shrunk by its ``retreat_m``), or None."""
        if self.outlines is None:
            return None
        r = float(self.retreat_m.get(year, 0.0))
        if r <= 0:
            return self.outlines
        out = self.outlines.copy()
        out["geometry"] = out.geometry.buffer(-r)
        return out[~out.geometry.is_empty]

    def elevation(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """The DEM at the regular grid ``x`` by ``y`` (cubic spline of the physics grid)."""
        return self.sample(self.z_spline, x, y, order=3)

    def glacier_cover(
        self, year: int, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Glacier cover of ``year`` (share of the outlines, bilinear): glacier where > 0.5."""
        return self.physics_at(self.epochs[year].glacier, x, y)


def _fill_nearest(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``values`` with every NaN replaced by the nearest finite value."""
    missing = ~np.isfinite(values)
    if not missing.any():
        return values
    idx = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
    return np.asarray(values[tuple(idx)])


def read_dem(
    path: str | Path,
    grid: RegionGrid,
    region: tuple[float, float, float, float] | None = None,
    min_coverage: float = MIN_DEM_COVERAGE,
) -> NDArray[np.float64]:
    """The DEM at ``path`` (any GeoTIFF or other GDAL raster, any CRS; band 1, metres) warped
    bilinearly onto ``grid``, reading only the part of the file over it.

    Voids (the file's nodata, values below :data:`VOID_BELOW_M`) and cells beyond the DEM are
    filled with the nearest DEM value; the DEM must cover at least ``min_coverage`` of the
    cells inside ``region`` (bounds in the grid CRS; default the whole grid), else a one-line
    :class:`~glaciermap.core.errors.InputDataError` names the file.
    """
    p = Path(path)
    if not p.exists():
        raise MissingInputError(
            f"{p}: DEM of the demo world not found; set its dem: to an existing GeoTIFF DEM "
            "(paths are relative to the working directory)"
        )
    dst = np.full(grid.shape, np.nan, dtype=np.float32)
    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise InputDataError(f"{p}: DEM has no CRS; assign one (e.g. gdal_edit -a_srs)")
            nodata = src.nodata
            if nodata is None and src.dtypes[0] == "int16":
                nodata = -32768.0  # the SRTM void value, often left unflagged
            reproject(
                rasterio.band(src, 1),
                dst,
                src_nodata=nodata,
                dst_transform=grid.transform,
                dst_crs=grid.rio_crs,
                dst_nodata=np.nan,
                resampling=Resampling.bilinear,
            )
    except rasterio.errors.RasterioError as exc:
        detail = " ".join(str(exc).split())[:160]
        raise InputDataError(
            f"{p}: DEM not readable ({detail}); replace it with a single-band GeoTIFF DEM"
        ) from exc
    z = dst.astype(np.float64)
    z[z < VOID_BELOW_M] = np.nan
    valid = np.isfinite(z)
    rows, cols = _window_of(grid, region)
    share = float(valid[rows, cols].mean()) if valid[rows, cols].size else 0.0
    if share < min_coverage:
        left, bottom, right, top = region or grid.bounds
        raise InputDataError(
            f"{p}: the DEM covers only {share:.0%} of the demo region "
            f"[{left:.0f}, {bottom:.0f}, {right:.0f}, {top:.0f}] ({grid.crs}), at least "
            f"{min_coverage:.0%} needed; use a DEM over the region or move the region"
        )
    return _fill_nearest(z)


def _window_of(
    grid: RegionGrid, bounds: tuple[float, float, float, float] | None
) -> tuple[slice, slice]:
    """Rows and columns of ``grid`` whose cell centres lie inside ``bounds``."""
    if bounds is None:
        return slice(None), slice(None)
    t, r = grid.transform, grid.resolution
    left, bottom, right, top = bounds
    c0 = max(0, math.ceil((left - t.c) / r - 0.5))
    c1 = min(grid.width, math.floor((right - t.c) / r - 0.5) + 1)
    r0 = max(0, math.ceil((t.f - top) / r - 0.5))
    r1 = min(grid.height, math.floor((t.f - bottom) / r - 0.5) + 1)
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


ID_COLUMNS = ("RGIId", "rgi_id", "glac_id", "GLIMSId", "glims_id", "id")
"""Inventory id columns looked for in the outlines, first found wins (RGI 6, RGI 7, GLIMS)."""


def read_outlines(path: str | Path, grid: RegionGrid) -> gpd.GeoSeries:
    """The glacier polygons of the vector file ``path`` (GeoPackage, shapefile, ...; any CRS)
    that reach ``grid``, valid, in the grid CRS. Only features whose bounding box meets the
    grid are read, so a whole RGI region file is fine."""
    return read_outline_table(path, grid).geometry


def read_outline_table(path: str | Path, grid: RegionGrid) -> gpd.GeoDataFrame:
    """As :func:`read_outlines`, with each polygon's inventory id (``glacier_id``: the first
    of :data:`ID_COLUMNS` the file has, else ``G1``, ``G2``, ... in file order)."""
    p = Path(path)
    if not p.exists():
        raise MissingInputError(
            f"{p}: glacier outlines of the demo world not found; set its outlines: to an "
            "existing vector file (e.g. RGI polygons; paths relative to the working directory)"
        )
    area = gpd.GeoSeries([box(*grid.bounds)], crs=grid.rio_crs)
    try:
        gdf = gpd.read_file(p, bbox=area)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        detail = " ".join(str(exc).split(";")[0].split())[:160]
        raise InputDataError(
            f"{p}: outlines not readable ({detail}); replace them with a GeoPackage or "
            "shapefile of glacier polygons"
        ) from exc
    if gdf.crs is None:
        raise InputDataError(f"{p}: outlines have no CRS; assign one (e.g. EPSG:4326)")
    col = next((c for c in ID_COLUMNS if c in gdf.columns), None)
    ids = gdf[col].astype(str) if col else [f"G{i + 1}" for i in range(len(gdf))]
    keep = (gdf.geometry.notna() & ~gdf.geometry.is_empty).to_numpy()
    table = gpd.GeoDataFrame(
        {"glacier_id": list(pd.Series(list(ids))[keep])},
        geometry=shapely.make_valid(gdf.geometry.values[keep]),
        crs=gdf.crs,
    )
    table = table.explode(index_parts=False)
    table = table[table.geom_type.isin(["Polygon", "MultiPolygon"])]
    return table.to_crs(grid.rio_crs).reset_index(drop=True)


def outline_cover(
    geoms: gpd.GeoSeries,
    grid: RegionGrid,
    supersample: int = COVER_SUPERSAMPLE,
    smoothing_cells: float = COVER_SMOOTHING_CELLS,
    stripe_rows: int = 256,
) -> NDArray[np.float32]:
    """Share (0..1) of every cell of ``grid`` covered by the polygons ``geoms`` (grid CRS),
    rasterised ``supersample`` x ``supersample`` times finer in stripes of ``stripe_rows``
    cells (bounded memory), then Gaussian-smoothed by ``smoothing_cells``."""
    cover = np.zeros(grid.shape, dtype=np.float32)
    shapes = [g for g in geoms if g is not None and not g.is_empty]
    if not shapes:
        return cover
    s = supersample
    t = grid.transform
    sub = grid.resolution / s
    for r0 in range(0, grid.height, stripe_rows):
        n = min(stripe_rows, grid.height - r0)
        tr = Affine(sub, 0.0, t.c, 0.0, -sub, t.f - r0 * grid.resolution)
        fine = rasterio.features.rasterize(
            shapes, out_shape=(n * s, grid.width * s), transform=tr, dtype="uint8"
        )
        cover[r0 : r0 + n] = fine.reshape(n, s, grid.width, s).mean(axis=(1, 3))
    if smoothing_cells > 0:
        cover = ndimage.gaussian_filter(cover, smoothing_cells, mode="nearest")
    return np.clip(cover, 0.0, 1.0).astype(np.float32)


def build_world_from_dem(
    world_grid: RegionGrid,
    dem_path: str | Path,
    outlines_path: str | Path,
    seed: int,
    elas: Mapping[int, float | None],
    region: tuple[float, float, float, float] | None = None,
    debris_below_ela_m: float = 100.0,
    max_phys_cells: int = MAX_PHYS_CELLS,
    seasonal_snow: Mapping[int, float] | None = None,
    retreat_m: Mapping[int, float] | None = None,
    min_coverage: float = MIN_DEM_COVERAGE,
) -> RealTerrainWorld:
    """The physics of a world covering ``world_grid`` from a real DEM and real outlines, one
    glacier state per year of ``elas`` (see the module docstring).

    ``elas``: the ELA (m) per year, ``None`` for the median elevation of the year's glacier
    cells. ``region``: bounds (grid CRS) the DEM must cover (``min_coverage`` of them, see
    :func:`read_dem`; default the whole world). ``retreat_m``: per year, the outlines are
    shrunk by this inward buffer (m) before rasterising. ``seasonal_snow`` as in
    :func:`~glaciermap.synthetic.world.build_world`.
    """
    grid = physics_grid(world_grid, max_phys_cells)
    res = grid.resolution
    z = read_dem(dem_path, grid, region, min_coverage)
    table = read_outline_table(outlines_path, grid)
    outlines = table.geometry
    shrink = dict(retreat_m or {})
    amounts = dict(seasonal_snow or {})
    covers: dict[int, NDArray[np.float32]] = {}
    for year in sorted(elas):
        r = float(shrink.get(year, 0.0))
        geoms = outlines if r <= 0 else outlines.buffer(-r)
        covers[year] = outline_cover(geoms, grid)
    union = np.max(list(covers.values()), axis=0) if covers else np.zeros(grid.shape, np.float32)
    no_lake = np.zeros(grid.shape, dtype=np.float32)
    epochs: dict[int, EpochState] = {}
    for year in sorted(elas):
        ela = elas[year]
        ice = covers[year] > 0.5
        if ela is None:
            if not ice.any():
                raise ConfigError(
                    f"{outlines_path}: no glacier of the outlines lies in the demo world, so "
                    f"epoch {year} has no default ELA; give its ela_m"
                )
            ela = float(np.median(z[ice]))
            log.info("demo %d: ELA %.0f m (median elevation of the glacier cells)", year, ela)
        epochs[year] = EpochState(
            year,
            float(ela),
            covers[year],
            no_lake,
            float(amounts.get(year, SEASONAL_SNOW)),
            ndimage.gaussian_filter(np.clip(covers[year], 0.0, 1.0), 500.0 / res),
        )
    return RealTerrainWorld(
        grid=grid,
        seed=seed,
        z=z,
        z_spline=ndimage.spline_filter(z, order=3, mode="nearest"),
        union=np.asarray(union, dtype=np.float32),
        epochs=epochs,
        debris_below_ela_m=debris_below_ela_m,
        sky_view=sky_view_factor(z, res),
        outlines=table,
        retreat_m={int(y): float(v) for y, v in shrink.items()},
    )


__all__ = [
    "RealTerrainWorld",
    "build_world_from_dem",
    "outline_cover",
    "read_dem",
    "read_outlines",
]
