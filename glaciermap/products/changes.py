"""Glacier area change between two epochs of outlines.

Glaciers split, merge, appear and vanish between epochs, so change is reported per *glacier
complex*: a connected part of the union of both epochs' outlines (read from the ``complexes``
layer of the outlines GeoPackages, or their only layer). Each complex gets the area
of each epoch inside it, the change (km2, percent of the first epoch, percent per year) and a
status (``retreat``, ``advance``, ``stable`` within ``stable_km2``, ``new``, ``vanished``).
The ids of both epochs' outlines inside it are listed. Lost and gained ground are written as
their own layers so a GIS can show them.

Output GeoPackage layers: ``glaciers`` (complexes), ``lost`` (ice in the first epoch only),
``gained`` (ice in the second epoch only), in the outlines' projected CRS (geographic outlines
are projected to their UTM zone). Areas are measured on a Lambert azimuthal equal-area
projection centred on the outlines, so they do not depend on the map projection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from glaciermap.core.errors import InputDataError
from glaciermap.core.io import PathLike, write_layers

log = logging.getLogger(__name__)

LAYERS = ("glaciers", "lost", "gained")


@dataclass(frozen=True)
class ChangeSummary:
    """Total glacier area (km2) of a region in two years."""

    year1: int
    year2: int
    area1_km2: float
    area2_km2: float

    @property
    def change_km2(self) -> float:
        """Area change from ``year1`` to ``year2`` in km2 (negative: loss)."""
        return self.area2_km2 - self.area1_km2

    @property
    def change_pct(self) -> float:
        """Area change in percent of the ``year1`` area (NaN if that is 0)."""
        return 100.0 * self.change_km2 / self.area1_km2 if self.area1_km2 else float("nan")

    def line(self) -> str:
        """One line: both areas, the change in km2 and percent, and percent per year."""
        return (
            f"{self.year1} -> {self.year2}: {self.area1_km2:.2f} -> {self.area2_km2:.2f} km2 "
            f"({self.change_km2:+.2f} km2, {self.change_pct:+.1f} %, "
            f"{self.change_pct / max(1, self.year2 - self.year1):+.2f} %/yr)"
        )


def _common_projected(frames: list[gpd.GeoDataFrame], sources: list[str]) -> list[gpd.GeoDataFrame]:
    """The frames in the first projected CRS among them (else the first one's UTM zone)."""
    for gdf, source in zip(frames, sources, strict=True):
        if gdf.crs is None:
            raise InputDataError(f"{source}: outlines have no CRS; write them with one")
    crs = next((f.crs for f in frames if not f.crs.is_geographic), None)
    if crs is None:
        nonempty = [f for f in frames if len(f)]
        crs = nonempty[0].estimate_utm_crs() if nonempty else CRS.from_epsg(3857)
    return [f.to_crs(crs) for f in frames]


def _area_km2(geoms: Sequence[shapely.Geometry], crs: CRS, area_crs: CRS | None) -> NDArray[Any]:
    """Areas on the ellipsoid's equal-area projection ``area_crs`` (whatever the map CRS)."""
    if not len(geoms):
        return np.zeros(0)
    series = gpd.GeoSeries(list(geoms), crs=crs)
    return np.asarray((series.to_crs(area_crs) if area_crs else series).area) / 1e6


def _equal_area_crs(geoms: Sequence[shapely.Geometry], crs: CRS) -> CRS | None:
    """Lambert azimuthal equal-area centred on the outlines (None without outlines)."""
    if not len(geoms):
        return None
    c = gpd.GeoSeries([shapely.union_all(list(geoms)).envelope.centroid], crs=crs).to_crs(4326)
    lon, lat = float(c.x.iloc[0]), float(c.y.iloc[0])
    return CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m")


def _parts(geom: shapely.Geometry | None, min_area_m2: float) -> list[shapely.Geometry]:
    if geom is None or geom.is_empty:
        return []
    parts = shapely.get_parts(geom)
    return [p for p in parts if p.geom_type == "Polygon" and p.area >= min_area_m2]


def _ids(gdf: gpd.GeoDataFrame, column: str) -> pd.Series:
    if column in gdf.columns:
        return gdf[column].astype(str)
    return pd.Series([str(i + 1) for i in range(len(gdf))], index=gdf.index)


def glacier_changes(
    outlines1: gpd.GeoDataFrame,
    outlines2: gpd.GeoDataFrame,
    year1: int,
    year2: int,
    stable_km2: float = 0.001,
    min_area_m2: float = 100.0,
    source1: str = "first outlines",
    source2: str = "second outlines",
) -> tuple[dict[str, gpd.GeoDataFrame], ChangeSummary]:
    """Per-complex change from ``outlines1`` (year1) to ``outlines2`` (year2); the layers
    :data:`LAYERS` and a summary. Slivers under ``min_area_m2`` (raster edge effects) are
    left out of the lost/gained layers."""
    if year2 <= year1:
        raise InputDataError(f"change from {year1} to {year2}: the second year must be later")
    a, b = _common_projected([outlines1, outlines2], [source1, source2])
    a = a[~a.geometry.is_empty & a.geometry.notna()].copy()
    b = b[~b.geometry.is_empty & b.geometry.notna()].copy()
    a["geometry"] = shapely.make_valid(a.geometry.to_numpy())
    b["geometry"] = shapely.make_valid(b.geometry.to_numpy())
    u1 = shapely.union_all(a.geometry.to_numpy()) if len(a) else shapely.Polygon()
    u2 = shapely.union_all(b.geometry.to_numpy()) if len(b) else shapely.Polygon()
    complexes = _parts(shapely.union(u1, u2), 0.0)
    geoms = np.asarray(complexes, dtype=object)
    area_crs = _equal_area_crs(complexes, a.crs)
    area1 = _area_km2(list(shapely.intersection(geoms, u1)), a.crs, area_crs)
    area2 = _area_km2(list(shapely.intersection(geoms, u2)), a.crs, area_crs)
    change = area2 - area1
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(area1 > 0, 100.0 * change / area1, np.nan)
    status = np.select(
        [area1 <= 0, area2 <= 0, np.abs(change) <= stable_km2, change < 0],
        ["new", "vanished", "stable", "retreat"],
        default="advance",
    )
    ids1, ids2 = _ids(a, "glacier_id"), _ids(b, "glacier_id")
    tree1, tree2 = shapely.STRtree(a.geometry.to_numpy()), shapely.STRtree(b.geometry.to_numpy())
    members1: list[str] = []
    members2: list[str] = []
    for g in complexes:  # members share area with the complex (touching is not enough)
        for tree, frame, ids, members in ((tree1, a, ids1, members1), (tree2, b, ids2, members2)):
            hits = tree.query(g, predicate="intersects")
            overlap = shapely.area(shapely.intersection(frame.geometry.to_numpy()[hits], g)) > 0
            members.append(",".join(ids.iloc[sorted(hits[overlap])]))
    glaciers = gpd.GeoDataFrame(
        {
            "complex_id": np.arange(1, len(complexes) + 1),
            f"area_{year1}_km2": area1,
            f"area_{year2}_km2": area2,
            "change_km2": change,
            "change_pct": pct,
            "rate_pct_per_yr": pct / (year2 - year1),
            "status": status,
            f"glacier_ids_{year1}": members1,
            f"glacier_ids_{year2}": members2,
        },
        geometry=list(complexes),
        crs=a.crs,
    )
    lost = gpd.GeoDataFrame(geometry=_parts(shapely.difference(u1, u2), min_area_m2), crs=a.crs)
    gained = gpd.GeoDataFrame(geometry=_parts(shapely.difference(u2, u1), min_area_m2), crs=a.crs)
    for layer in (lost, gained):
        layer["area_km2"] = _area_km2(list(layer.geometry), a.crs, area_crs)
    summary = ChangeSummary(year1, year2, float(area1.sum()), float(area2.sum()))
    return {"glaciers": glaciers, "lost": lost, "gained": gained}, summary


def read_complexes(path: PathLike) -> gpd.GeoDataFrame:
    """The ``complexes`` layer of a :mod:`glaciermap.products.outlines` GeoPackage, or the only
    layer of any other outlines file."""
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
        return gpd.read_file(path, layer="complexes" if "complexes" in layers else None)
    except Exception as exc:  # pyogrio raises DataSourceError and friends
        detail = " ".join(str(exc).split(";")[0].split())[:160]  # not pyogrio's driver hint
        raise InputDataError(f"{path}: cannot read outlines ({detail}); regenerate it") from exc


def write_changes(
    outlines1: PathLike,
    outlines2: PathLike,
    dest: PathLike,
    year1: int,
    year2: int,
    stable_km2: float = 0.001,
    min_area_m2: float = 100.0,
) -> ChangeSummary:
    """Read two outline files, compute :func:`glacier_changes`, write a GeoPackage with the
    layers :data:`LAYERS` (all or nothing)."""
    frames = [read_complexes(p) for p in (outlines1, outlines2)]
    layers, summary = glacier_changes(
        frames[0],
        frames[1],
        year1,
        year2,
        stable_km2,
        min_area_m2,
        source1=str(outlines1),
        source2=str(outlines2),
    )
    write_layers(dest, {name: layers[name] for name in LAYERS})
    log.info("glacier change %s", summary.line())
    return summary
