"""The synthetic demo world, written in the formats real products ship in.

The world itself (terrain, glaciers, lakes, surfaces, illumination, clouds, SAR geometry) is
:mod:`glaciermap.synthetic.world`; this module names and writes its products, block by block, so a
world of the size of a full Sentinel-2 tile generates in bounded memory.

Products written (paths from :func:`product_paths`):

* Sentinel-2 L2A-style scene folders with 10 m and 20 m band GeoTIFFs (uint16 with the
  processing-baseline >= 04.00 offset ``BOA_ADD_OFFSET=-1000``, quantification 10000), a scene
  classification layer (SCL, 20 m: vegetation 4, bare 5, water 6, cloud shadow 3, cloud 8/9,
  snow/ice 11) and an ``MTD_MSIL2A.xml`` carrying offset and quantification value; 20 m bands
  are the mean of the 10 m samples they cover;
* a Landsat 5 TM Collection 2 Level-2-style scene (30 m, ``SR_B1..B5, SR_B7`` with scale
  2.75e-5 and offset -0.2, ``QA_PIXEL`` bit flags), each pixel the mean of 3 x 3 samples;
* Sentinel-1 RTC-style backscatter (linear gamma0 power, EPSG:4326, ~20 m) per date and
  polarisation with a layover/shadow map per date (``..._ls_map.tif``: 0 neither,
  1 layover, 2 radar shadow), and InSAR coherence per consecutive pair, as ASF HyP3 names them;
* Copernicus-DEM-style 1-degree tiles (``Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif``,
  1 arc-second, EPSG:4326, pixel-centre registration). Unlike real tiles, only the part
  covering the world holds values; the rest is nodata (-32767);
* glacier inventories per epoch (GeoPackage, EPSG:4326, RGI 6-like columns): the polygons of
  exactly the glacier cover rendered into the images.

A world whose config gives ``dem`` and ``outlines`` is rendered over that real DEM with those
real glacier outlines instead (:mod:`glaciermap.synthetic.real_terrain`); its products are the
same, the DEM tiles then hold the real DEM and the inventories the real outlines as rendered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import math
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import rasterio.warp
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.io import DatasetWriter
from rasterio.windows import Window
from scipy import ndimage
from shapely.geometry import shape

from glaciermap.core.errors import ConfigError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import atomic_path, write_layers
from glaciermap.core.reproject import shape_windows
from glaciermap.synthetic.layout import (
    DEMO_DIR,
    S2_BANDS,
    TM_BANDS,
    WORLD_RES_M,
    EpochSpec,
    WorldSpec,
    _compact,
    _geo_bounds,
    _landsat_product,
    _s2_product,
    all_product_paths,
    product_paths,
    world_grid,
    world_specs,
)
from glaciermap.synthetic.real_terrain import RealTerrainWorld, build_world_from_dem
from glaciermap.synthetic.world import (
    CLASS_CODES,
    OPTICAL_BANDS,
    World,
    build_world,
    class_map,
    render_backscatter,
    render_coherence,
    render_optical,
    sar_geometry,
    scene,
)

# The layout (what a world is, which files it writes) is re-exported for notebooks and tests.
__all__ = [
    "DEMO_DIR",
    "EpochSpec",
    "WorldSpec",
    "all_product_paths",
    "generate_demo",
    "generate_world",
    "glacier_polygons",
    "make_world",
    "product_paths",
    "world_grid",
    "world_specs",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- block writing


def _profile(
    crs: CRS | str, transform: Affine, shape: tuple[int, int], dtype: str, nodata: float | None
) -> dict[str, Any]:
    prof: dict[str, Any] = {
        "driver": "GTiff",
        "width": shape[1],
        "height": shape[0],
        "count": 1,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
    }
    if shape[0] >= 256 and shape[1] >= 256:
        prof.update(tiled=True, blockxsize=256, blockysize=256)
    return prof


@contextlib.contextmanager
def _writers(
    outputs: list[tuple[Path, dict[str, Any]]],
) -> Iterator[list[DatasetWriter]]:
    """Open several GeoTIFFs for writing under temporary names; each is renamed to its own
    name when it is closed (on an error none of the unclosed ones appears)."""
    with contextlib.ExitStack() as stack:
        dsts = []
        for path, prof in outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(atomic_path(path))
            dsts.append(stack.enter_context(rasterio.open(tmp, "w", **prof)))
        yield dsts


def _out_block(block: int, supersample: int) -> int:
    """Output pixels a side of a block rendered with ``supersample``^2 samples per pixel:
    about ``block`` samples a side, a multiple of the 256 px GeoTIFF tiles where possible."""
    n = max(8, block // supersample)
    return n // 256 * 256 if n >= 256 else (256 if block >= 512 else n)


def _centres(
    transform: Affine, win: Window, supersample: int = 1
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The x and y of the sample centres of ``win``: ``supersample`` x ``supersample`` per pixel.

    Computed from the samples' indices in the whole grid, so a sample has the same
    coordinates, to the last bit, whichever block it falls in."""
    s = supersample
    sub = transform.a / s
    cols = win.col_off * s + np.arange(win.width * s)
    rows = win.row_off * s + np.arange(win.height * s)
    return transform.c + (cols + 0.5) * sub, transform.f - (rows + 0.5) * sub


def _block_mean(a: NDArray[Any], s: int) -> NDArray[np.float64]:
    """Mean over ``s`` x ``s`` samples of the last two axes."""
    if s == 1:
        return np.asarray(a, dtype=np.float64)
    *lead, h, w = a.shape
    return np.asarray(a.reshape(*lead, h // s, s, w // s, s).mean(axis=(-3, -1)))


def _sub_grid(world: RegionGrid, res: float, offset: float = 0.0) -> tuple[Affine, tuple[int, int]]:
    """A coarser grid inside ``world`` whose origin sits on ``offset`` + multiples of ``res``."""
    left, bottom, right, top = world.bounds
    x0 = math.ceil((left - offset) / res) * res + offset
    y0 = math.floor((top - offset) / res) * res + offset
    nx = int((right - x0) // res)
    ny = int((y0 - bottom) // res)
    return Affine(res, 0, x0, 0, -res, y0), (ny, nx)


@functools.lru_cache(maxsize=8)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


@dataclass(frozen=True)
class _Resampler:
    """Samples of the 10 m world at the pixels of a block of another grid (e.g. geographic).

    ``x``/``y`` are the world samples to render; a rendered layer is interpolated at the exact
    projected positions of ``supersample`` x ``supersample`` points per output pixel and
    averaged (multi-looking), so a block's values do not depend on the block layout.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    rows: NDArray[np.float64]
    cols: NDArray[np.float64]
    inside: NDArray[np.bool_]
    supersample: int

    @classmethod
    def for_block(
        cls, wgrid: RegionGrid, crs: str, transform: Affine, win: Window, supersample: int = 1
    ) -> _Resampler | None:
        xs, ys = _centres(transform, win, supersample)
        lon, lat = np.meshgrid(xs, ys)
        px, py = _transformer(crs, wgrid.crs).transform(lon, lat)
        wl, wb, wr, wt = wgrid.bounds
        r = WORLD_RES_M
        inside = (px >= wl + r) & (px <= wr - r) & (py >= wb + r) & (py <= wt - r)
        if not inside.any():
            return None
        x0 = wl + math.floor((px[inside].min() - wl) / r - 2) * r
        x1 = wl + math.ceil((px[inside].max() - wl) / r + 2) * r
        y1 = wt - math.floor((wt - py[inside].max()) / r - 2) * r
        y0 = wt - math.ceil((wt - py[inside].min()) / r + 2) * r
        x = x0 + (np.arange(round((x1 - x0) / r)) + 0.5) * r
        y = y1 - (np.arange(round((y1 - y0) / r)) + 0.5) * r
        rows, cols = (y1 - py) / r - 0.5, (px - x0) / r - 0.5
        return cls(x, y, rows, cols, inside, supersample)

    def __call__(self, data: NDArray[Any], order: int, nodata: float) -> NDArray[np.float32]:
        """``data`` (rendered at ``x`` by ``y``) at the block's pixels: bilinear (``order``
        1) or nearest (0) at each sample, then the mean of each pixel's samples."""
        v = ndimage.map_coordinates(
            np.asarray(data, dtype=np.float64), [self.rows, self.cols], order=order, mode="nearest"
        )
        v = _block_mean(np.where(self.inside, v, np.nan), self.supersample)
        return np.where(np.isnan(v), nodata, v).astype(np.float32)

    def pick(self, data: NDArray[Any], nodata: float) -> NDArray[np.float32]:
        """``data`` (a class layer) at the sample nearest each pixel's centre (``supersample``
        // 2 along each axis), by nearest neighbour."""
        c, s = self.supersample // 2, self.supersample
        rows, cols = np.rint(self.rows[c::s, c::s]), np.rint(self.cols[c::s, c::s])
        h, w = data.shape
        ok = self.inside[c::s, c::s] & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        v = np.full(rows.shape, nodata, dtype=np.float32)
        v[ok] = data[rows[ok].astype(np.int64), cols[ok].astype(np.int64)]
        return v


# --------------------------------------------------------------------------- optical


def _mtd_xml(offset: int, quantification: int) -> str:
    offsets = "\n".join(
        f'        <BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
  <n1:General_Info>
    <Product_Image_Characteristics>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">{quantification}</BOA_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
      <BOA_ADD_OFFSET_VALUES_LIST>
{offsets}
      </BOA_ADD_OFFSET_VALUES_LIST>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


SCL_OF_CLASS = (5, 4, 11, 11, 11, 6, 5)  # rock, vegetation, snow, firn, ice, water, debris


def _write_sentinel2(
    files: list[Path], world: World, year: int, sc: Any, wgrid: RegionGrid, block: int
) -> None:
    """One L2A scene: uint16 DN = reflectance * 10000 + 1000 (baseline >= 04.00)."""
    mtd = next(f for f in files if f.name == "MTD_MSIL2A.xml")
    mtd.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(mtd) as tmp:
        tmp.write_text(_mtd_xml(-1000, 10000))
    rasters = [f for f in files if f.suffix == ".tif"]
    for res in (10, 20):
        group = [f for f in rasters if f.stem.endswith(f"_{res}m")]
        if not group:
            continue
        s = res // int(WORLD_RES_M)
        transform, shp = _sub_grid(wgrid, float(res))
        outputs = [
            (
                f,
                _profile(
                    wgrid.rio_crs, transform, shp, "uint8" if "_SCL_" in f.name else "uint16", 0
                ),
            )
            for f in group
        ]
        with _writers(outputs) as dsts:
            for win in shape_windows(shp, _out_block(block, s)):
                ob = render_optical(world, year, sc, *_centres(transform, win, s))
                refl = _block_mean(ob.refl, s)
                c = s // 2
                for f, dst in zip(group, dsts, strict=True):
                    band = f.stem.split("_")[-2]
                    if band == "SCL":
                        scl = np.choose(ob.classes[c::s, c::s], SCL_OF_CLASS)
                        scl = np.where(ob.cloud_shadow[c::s, c::s], 3, scl)
                        cl = ob.cloud[c::s, c::s]
                        scl = np.where(cl > 0.5, 9, np.where(cl > 0.2, 8, scl))
                        dst.write(scl.astype(np.uint8), 1, window=win)
                        continue
                    b = OPTICAL_BANDS.index(S2_BANDS[band][0])
                    dn = np.clip(np.round(refl[b] * 10000 + 1000), 1, 65535)
                    dst.write(dn.astype(np.uint16), 1, window=win)


def _landsat_qa(ob: Any, c: int, s: int) -> NDArray[np.uint16]:
    """QA_PIXEL bits of Collection 2: clear 6, water 7, snow 5, cloud 3 (+ confidence 8-9),
    dilated/thin cloud 1, cloud shadow 4 (+ confidence 10-11)."""
    classes, cloud, cshadow = (
        ob.classes[c::s, c::s],
        ob.cloud[c::s, c::s],
        ob.cloud_shadow[c::s, c::s],
    )
    snowice = np.isin(classes, [CLASS_CODES["snow"], CLASS_CODES["firn"], CLASS_CODES["ice"]])
    water = classes == CLASS_CODES["water"]
    qa = np.where(snowice, (1 << 5) | (1 << 6), np.where(water, (1 << 7) | (1 << 6), 1 << 6))
    qa = np.where(cshadow, (1 << 4) | (1 << 10) | (1 << 11), qa)
    qa = np.where(cloud > 0.5, (1 << 3) | (1 << 8) | (1 << 9), qa)
    qa = np.where((cloud > 0.2) & (cloud <= 0.5), 1 << 1, qa)
    return qa.astype(np.uint16)


def _write_landsat5(
    files: list[Path], world: World, year: int, sc: Any, wgrid: RegionGrid, block: int
) -> None:
    """Collection 2 L2: DN = (reflectance + 0.2) / 2.75e-5; QA_PIXEL bits (C2 definition)."""
    s = 3
    transform, shp = _sub_grid(wgrid, 30.0, offset=15.0)
    outputs = [
        (
            f,
            _profile(
                wgrid.rio_crs, transform, shp, "uint16", 1 if f.stem.endswith("QA_PIXEL") else 0
            ),
        )
        for f in files
    ]
    with _writers(outputs) as dsts:
        for win in shape_windows(shp, _out_block(block, s)):
            ob = render_optical(world, year, sc, *_centres(transform, win, s))
            refl = _block_mean(ob.refl, s)
            for f, dst in zip(files, dsts, strict=True):
                key = f.stem.split("_T1_")[-1]
                if key == "QA_PIXEL":
                    dst.write(_landsat_qa(ob, s // 2, s), 1, window=win)
                    continue
                b = OPTICAL_BANDS.index(TM_BANDS[key])
                dn = np.clip(np.round((refl[b] + 0.2) / 2.75e-5), 1, 65535)
                dst.write(dn.astype(np.uint16), 1, window=win)


# --------------------------------------------------------------------------- SAR


def _sar_grid(spec: WorldSpec) -> tuple[Affine, tuple[int, int]]:
    w, s, e, n = _geo_bounds(spec)
    res = 0.0002  # degrees, ~20 m
    nx, ny = math.ceil((e - w) / res), math.ceil((n - s) / res)
    return Affine(res, 0, w, 0, -res, n), (ny, nx)


def _write_sar(
    files: list[Path],
    spec: WorldSpec,
    world: World,
    year: int,
    wgrid: RegionGrid,
    epoch_key: int,
) -> None:
    """Backscatter per date and polarisation (+ layover/shadow map), coherence per pair, on
    a geographic grid; each block rendered at 10 m in the world CRS and sampled at the pixels'
    projected positions (backscatter: mean of 2 x 2 samples, multi-looking)."""
    transform, shp = _sar_grid(spec)
    shadow = sar_geometry(world)
    geo = "EPSG:4326"
    stems: dict[str, list[Path]] = {}
    for f in files:
        if f.name.endswith("_corr.tif"):
            stems.setdefault(f.name, []).append(f)
        else:
            stems.setdefault(f.name.split("_5A3C_")[0], []).append(f)
    for i, (_, group) in enumerate(sorted(stems.items())):
        key = epoch_key + i
        outputs = [
            (
                f,
                _profile(
                    geo,
                    transform,
                    shp,
                    *(("uint8", 255) if "_ls_map" in f.name else ("float32", np.nan)),
                ),
            )
            for f in group
        ]
        with _writers(outputs) as dsts:
            for d, f in zip(dsts, group, strict=True):
                if "_ls_map" in f.name:
                    d.update_tags(VALUES="0 neither, 1 layover, 2 radar shadow")
                elif not f.name.endswith("_corr.tif"):
                    pol = f.stem.split("_")[-1]
                    d.update_tags(UNITS="gamma0 linear power", POLARIZATION=pol)
            for win in shape_windows(shp, _out_block(spec.block_px, 2)):
                coherence = group[0].name.endswith("_corr.tif")
                rs = _Resampler.for_block(wgrid, geo, transform, win, 1 if coherence else 2)
                if rs is None:
                    continue
                if coherence:
                    coh = render_coherence(world, year, shadow, rs.x, rs.y, key)
                    dsts[0].write(np.clip(rs(coh, 1, np.nan), 0, 1), 1, window=win)
                    continue
                pols = tuple(f.stem.split("_")[-1] for f in group if "_ls_map" not in f.name)
                power, ls = render_backscatter(world, year, shadow, rs.x, rs.y, key, pols)
                for f, dst in zip(group, dsts, strict=True):
                    if "_ls_map" in f.name:  # the class of one sample near the centre
                        dst.write(rs.pick(ls, 255).astype(np.uint8), 1, window=win)
                    else:  # multi-looked: mean of 2 x 2 samples per pixel
                        dst.write(rs(power[f.stem.split("_")[-1]], 1, np.nan), 1, window=win)


# --------------------------------------------------------------------------- DEM


def _write_dem_tiles(files: list[Path], world: World, wgrid: RegionGrid, block: int) -> None:
    """1 arc-second tiles, pixel-centre registered, filled only where the world lies.

    A tile that exists already (shared with another world of the same demo) is updated:
    this world's pixels are written into a copy, which then replaces it.
    """
    w, s, e, n = rasterio.warp.transform_bounds(wgrid.rio_crs, "EPSG:4326", *wgrid.bounds)
    nodata = -32767.0
    for f in files:
        stem = f.stem.split("_")
        lat = int(stem[4][1:]) * (1 if stem[4][0] == "N" else -1)
        lon = int(stem[6][1:]) * (1 if stem[6][0] == "E" else -1)
        px = 1.0 / 3600.0
        tile_tr = Affine(px, 0, lon - px / 2, 0, -px, lat + 1 + px / 2)
        size = 3600
        # Window of the tile covered by the world.
        c0 = max(0, math.floor((w - tile_tr.c) / px))
        c1 = min(size, math.ceil((e - tile_tr.c) / px))
        r0 = max(0, math.floor((tile_tr.f - n) / px))
        r1 = min(size, math.ceil((tile_tr.f - s) / px))
        prof = _profile("EPSG:4326", tile_tr, (size, size), "float32", nodata)
        prof.update(blockxsize=512, blockysize=512)
        f.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(f) as tmp:
            if f.exists():
                shutil.copyfile(f, tmp)
            with rasterio.open(
                tmp, "r+" if f.exists() else "w+", **({} if f.exists() else prof)
            ) as dst:
                for sub in shape_windows((r1 - r0, c1 - c0), _out_block(block, 3)):
                    win = Window(c0 + sub.col_off, r0 + sub.row_off, sub.width, sub.height)
                    rs = _Resampler.for_block(wgrid, "EPSG:4326", tile_tr, win)
                    if rs is None:
                        continue
                    part = rs(world.elevation(rs.x, rs.y), 1, nodata)
                    old = dst.read(1, window=win)
                    dst.write(np.where(part == nodata, old, part), 1, window=win)


# --------------------------------------------------------------------------- inventory


def glacier_polygons(
    world: World, year: int, wgrid: RegionGrid, block: int = 1024, debris: bool = False
) -> gpd.GeoSeries:
    """The glacier cover of ``year`` on the 10 m world grid as polygons, one per glacier,
    polygonized block by block and merged across block edges; ``debris``: only its
    debris-covered part (the truth behind the clean-ice / debris-covered scores)."""
    parts: list[Any] = []
    for win in shape_windows(wgrid.shape, block):
        xy = _centres(wgrid.transform, win)
        mask = world.glacier(year, *xy)
        if debris and mask.any():
            mask &= class_map(world, year, *xy) == CLASS_CODES["debris"]
        if not mask.any():
            continue
        tr = rasterio.windows.transform(win, wgrid.transform)
        parts.extend(
            shape(g)
            for g, _ in rasterio.features.shapes(mask.astype(np.uint8), mask=mask, transform=tr)
        )
    if not parts:
        return gpd.GeoSeries([], crs=wgrid.rio_crs)
    merged = shapely.unary_union(parts)
    return (
        gpd.GeoSeries([merged], crs=wgrid.rio_crs).explode(index_parts=False).reset_index(drop=True)
    )


def _write_inventory(
    path: Path, world: World, wgrid: RegionGrid, spec: WorldSpec, year: int, date: str
) -> float:
    """The epoch's glacier outlines as an RGI 6-like GeoPackage; returns the area (km2).

    A world over real outlines splits the rendered cover along them: one polygon per real
    glacier, carrying its inventory id (so the per-glacier outlines and changes name real
    glaciers); elsewhere each connected piece of ice is a glacier with a synthetic id."""
    geoms = glacier_polygons(world, year, wgrid, 2 * spec.block_px)
    real = world.outlines_of(year) if isinstance(world, RealTerrainWorld) else None
    ids: list[str] | None = None
    if real is not None and len(geoms) and len(real):
        rendered = gpd.GeoDataFrame(geometry=geoms, crs=wgrid.rio_crs)
        pieces = gpd.overlay(rendered, real.to_crs(wgrid.rio_crs), how="intersection")
        pieces = pieces[pieces.geom_type.isin(["Polygon", "MultiPolygon"])]
        per_glacier = pieces.dissolve(by="glacier_id", sort=True).reset_index()
        geoms = gpd.GeoSeries(per_glacier.geometry.values, crs=wgrid.rio_crs)
        ids = [str(i) for i in per_glacier["glacier_id"]]
    # Elevation statistics from the physics grid (every glacier touches at least one cell).
    idx = np.arange(1, len(geoms) + 1)
    zmin = zmax = zmed = np.zeros(0)
    if len(geoms):
        labels = rasterio.features.rasterize(
            [(g, i) for i, g in zip(idx.tolist(), geoms, strict=True)],
            out_shape=world.grid.shape,
            transform=world.grid.transform,
            all_touched=True,
            dtype="int32",
        )
        zmin, zmax, zmed = (
            np.asarray(f(world.z, labels, idx), dtype=float)
            for f in (ndimage.minimum, ndimage.maximum, ndimage.median)
        )
    area_km2 = geoms.area / 1e6
    cent = geoms.centroid.to_crs("EPSG:4326")
    out = gpd.GeoDataFrame(
        {
            "RGIId": ids or [f"RGI60-99.{spec.seed % 100:02d}{i:03d}" for i in range(len(geoms))],
            "GLIMSId": [f"G{c.x * 1000:06.0f}E{c.y * 1000:05.0f}N" for c in cent],
            "BgnDate": [_compact(date)] * len(geoms),
            "EndDate": ["-9999999"] * len(geoms),
            "CenLon": cent.x.to_numpy(),
            "CenLat": cent.y.to_numpy(),
            "O1Region": ["99"] * len(geoms),
            "Area": area_km2.to_numpy(),
            "Zmin": zmin.round(),
            "Zmax": zmax.round(),
            "Zmed": zmed.round(),
            "Name": [f"{spec.region} glacier {i + 1}" for i in range(len(geoms))],
        },
        geometry=geoms.to_crs("EPSG:4326"),
        crs="EPSG:4326",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_layers(path, {path.stem: out})
    return float(area_km2.sum())


def _write_debris(path: Path, world: World, wgrid: RegionGrid, spec: WorldSpec, year: int) -> None:
    """The debris-covered parts of the epoch's glaciers as polygons (like a debris-cover map,
    e.g. Scherler et al. 2018): the truth of the debris-covered IoU."""
    geoms = glacier_polygons(world, year, wgrid, 2 * spec.block_px, debris=True)
    out = gpd.GeoDataFrame({"class": ["debris"] * len(geoms)}, geometry=geoms, crs=wgrid.rio_crs)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_layers(path, {path.stem: out})


# --------------------------------------------------------------------------- generation


def make_world(spec: WorldSpec) -> World:
    """The physics of a demo world (see :mod:`glaciermap.synthetic.world`): fractal terrain
    with balance-flux glaciers, or, for a world with ``dem_path`` and ``outlines_path``, the
    real DEM with the real outlines (:mod:`glaciermap.synthetic.real_terrain`)."""
    seasonal = {ep.year: ep.seasonal_snow for ep in spec.epochs}
    if spec.dem_path is not None or spec.outlines_path is not None:
        if spec.dem_path is None or spec.outlines_path is None:
            raise ConfigError(
                f"demo world {spec.region!r} has only one of dem: and outlines:; give both"
            )
        return build_world_from_dem(
            world_grid(spec),
            spec.dem_path,
            spec.outlines_path,
            spec.seed,
            {ep.year: ep.ela_m for ep in spec.epochs},
            region=spec.grid.bounds,
            debris_below_ela_m=spec.debris_below_ela_m,
            max_phys_cells=spec.max_phys_cells,
            seasonal_snow=seasonal,
            retreat_m={ep.year: ep.retreat_m for ep in spec.epochs},
        )
    elas: dict[int, float] = {}
    for ep in spec.epochs:
        if ep.ela_m is None:
            raise ConfigError(
                f"demo world {spec.region!r}, epoch {ep.year}: no ela_m; give the epoch's "
                "equilibrium-line altitude in m (optional only with dem: and outlines:)"
            )
        elas[ep.year] = ep.ela_m
    return build_world(
        world_grid(spec),
        spec.seed,
        elas,
        relief_m=spec.relief_m,
        mass_balance_gradient=spec.mass_balance_gradient,
        debris_below_ela_m=spec.debris_below_ela_m,
        max_phys_cells=spec.max_phys_cells,
        seasonal_snow=seasonal,
        dem_ela_m=spec.dem_ela_m,
    )


def generate_world(spec: WorldSpec, out_dir: Path | str) -> list[Path]:
    """Write every product of one demo world; returns the files written."""
    out_dir = Path(out_dir)
    paths = product_paths(spec, out_dir)
    wgrid = world_grid(spec)
    world = make_world(spec)
    log.info(
        "demo %s: world %d x %d at %.0f m, physics grid %d x %d at %.0f m",
        spec.region,
        *wgrid.shape,
        wgrid.resolution,
        *world.grid.shape,
        world.grid.resolution,
    )
    _write_dem_tiles(paths["dem"], world, wgrid, spec.block_px)
    for k, ep in enumerate(spec.epochs):
        for idx, date in enumerate(ep.optical_dates):
            doy = dt.date.fromisoformat(date).timetuple().tm_yday
            sun_elev = 62.0 - 0.25 * abs(doy - 172)
            sun_az = 140.0 if ep.sensor == "sentinel-2" else 128.0
            sc = scene(world, 100_000 * k + idx, sun_elev, sun_az, ep.cloud_fraction, ep.sensor)
            if ep.sensor == "sentinel-2":
                name = _s2_product(spec, date, idx)[0]
                files = [f for f in paths[f"{ep.year}/optical"] if f.parent.name == name]
                _write_sentinel2(files, world, ep.year, sc, wgrid, spec.block_px)
            else:
                name = _landsat_product(date)
                files = [f for f in paths[f"{ep.year}/optical"] if f.parent.name == name]
                _write_landsat5(files, world, ep.year, sc, wgrid, spec.block_px)
            log.info("demo %s %s: optical scene %s written", spec.region, date, name)
        _write_sar(paths[f"{ep.year}/sar"], spec, world, ep.year, wgrid, 1000 * (k + 1))
        area = float("nan")
        if ep.inventory:
            area = _write_inventory(
                paths[f"{ep.year}/inventory"][0], world, wgrid, spec, ep.year, ep.optical_dates[0]
            )
            _write_debris(paths[f"{ep.year}/debris"][0], world, wgrid, spec, ep.year)
        log.info(
            "demo %s %d: ELA %.0f m, glacier area %.1f km2",
            spec.region,
            ep.year,
            world.epochs[ep.year].ela_m,
            area,
        )
    return [p for files in paths.values() for p in files]


def generate_demo(config: Mapping[str, Any], out_dir: Path | str | None = None) -> list[Path]:
    """Generate every demo world of a workflow configuration.

    Each world goes to ``out_dir`` if given, else to :data:`DEMO_DIR`, never to a user data
    folder: the demo's files carry real product names (Copernicus DEM tiles, Sentinel-2 band
    files), and a workflow output under a user folder could replace or delete real data.
    """
    written: list[Path] = []
    for spec in world_specs(config):
        written.extend(generate_world(spec, out_dir or DEMO_DIR))
    return sorted(set(written))
