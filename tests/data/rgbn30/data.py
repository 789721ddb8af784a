"""A seeded stand-in for a real user case: a 30 m Landsat 7 ETM+-like scene with only blue,
green, red and NIR as 8-bit DN, and the glacier inventory drawn into it.

``write_region(root, seed)`` writes, under ``root``, the layout of README "Real data" for the
region ``rgbn30`` and the year 2002::

    data/rgbn30/2002/optical/LE07_149035_20020912_toa_rgbn.tif             uint8 DN, 0 = nodata
    data/rgbn30/2002/optical/LE07_149035_20020912_toa_rgbn.tif.bands.yaml  the generic sidecar
    data/inventory/rgbn30_2002.gpkg                                        RGI 6-like outlines

and returns the paths and the ``region_config`` (crs, bounds, resolution_m, years) whose grid
is the scene's pixel grid. The sidecar is ``<image name>.bands.yaml`` (``scene.tif.bands.yaml``):
:func:`glaciermap.optical.read_generic_scene` finds the image by removing ``.bands.yaml``.

Terrain, glacier extent (balance-flux model), proglacial lakes, cast shadows and clouds come
from :mod:`glaciermap.world` (physics grid 20 m). The glacier extent is then fixed on a 10 m
subpixel grid, and the four bands are rendered here at 10 m and integrated to 30 m, so the
edges are mixed pixels. What makes the scene hard, as real imagery of a glacierised range is:

* snow and ice brightness varies: clean and dirty snow, firn, clean and dirty bare ice, thin
  debris; shaded snow is darker than sunlit rock in every band;
* rock varies from dark (schist) to bright (granite) in large lithology patches;
* cast terrain shadow (diffuse, bluish sky light only) on ice and rock, and cosine shading;
* seasonal snow outside the glaciers (patchy, partly thin over rock);
* debris-covered tongues (labelled glacier, look like rock), most on the lowest ice;
* a few clouds and their shadows (the inventory continues below them);
* top-of-atmosphere effects: path radiance (higher in blue, less at altitude);
* ETM+-like sensor: 16-detector banding, noise, 8-bit quantisation with saturation of the
  visible bands over bright sunlit snow, a slanted scene edge of nodata (DN 0) in one corner.

The inventory is exactly the glacier cover drawn: polygons of the 10 m glacier mask
(connected parts of at least 0.01 km2), in EPSG:4326 as RGI ships; rasterized on the 30 m grid
by pixel centre it gives the glacier label of every pixel.

Deterministic from the seed (same bytes for the same seed), about 2-4 s, < 200 MB.
Run ``python tests/data/rgbn30/data.py ROOT [--seed N]`` to write a region by hand.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from glaciermap import world as W
from glaciermap.grid import RegionGrid, write_raster

REGION = "rgbn30"
YEAR = 2002
DATE = "2002-09-12"
CRS = "EPSG:32643"  # UTM 43N (Karakoram)
RES_M = 30.0
SHAPE = (400, 650)  # rows, cols
# Landsat pixel corners lie on multiples of 15 m.
LEFT, TOP = 450015.0, 4020015.0
BOUNDS = (LEFT, TOP - SHAPE[0] * RES_M, LEFT + SHAPE[1] * RES_M, TOP)
SCENE = "LE07_149035_20020912_toa_rgbn"  # not a Landsat band file name: read via the sidecar
BANDS = ("blue", "green", "red", "nir")
SENSOR = "landsat-7-etm+"
SUN_ELEV_DEG, SUN_AZIM_DEG = 49.0, 146.0  # mid-September, ~10:30 solar time, 36 N
DN_SCALE, DN_OFFSET = 0.0034, 0.0  # TOA reflectance = DN * scale + offset; 255 -> 0.867
TARGET_GLACIER_FRACTION = 0.57
SUB = 3  # 10 m subpixels per 30 m pixel side
SUB_RES_M = RES_M / SUB
MIN_GLACIER_M2 = 0.01e6  # RGI's minimum glacier area
BLOCK_ROWS = 80  # output rows rendered at a time (memory)

# Surface reflectance end-members (blue, green, red, nir).
SNOW_CLEAN = (0.96, 0.95, 0.92, 0.72)  # late-season coarse-grained snow: NIR already low
SNOW_DIRTY = (0.66, 0.64, 0.61, 0.50)
FIRN = (0.62, 0.60, 0.57, 0.43)
ICE_CLEAN = (0.56, 0.52, 0.45, 0.27)
ICE_DIRTY = (0.26, 0.25, 0.23, 0.15)
DEBRIS = (0.12, 0.14, 0.16, 0.20)
ROCK_DARK = (0.06, 0.07, 0.085, 0.12)
ROCK_BRIGHT = (0.23, 0.26, 0.29, 0.33)
VEGETATION = (0.04, 0.07, 0.05, 0.30)
WATER = (0.10, 0.12, 0.10, 0.03)  # turbid proglacial lake
CLOUD_TOA = (0.80, 0.79, 0.78, 0.76)
SKY = (0.34, 0.27, 0.21, 0.14)  # diffuse share of the light on flat ground, per band
PATH = (0.075, 0.048, 0.030, 0.014)  # path radiance as reflectance, at 3000 m
TRANS = (0.82, 0.87, 0.91, 0.95)  # two-way transmittance
NOISE_DN = 0.7
DETECTOR_GAIN_SD = 0.006


def region_grid() -> RegionGrid:
    return RegionGrid.from_bounds(CRS, BOUNDS, RES_M)


def _cover_fraction(z: NDArray[np.float64], res: float, ela: float) -> float:
    """Glacier cover of the physics model inside the scene (the physics grid has 2 cells of
    margin on every side)."""
    return float((W.glacier_fraction(z, res, ela)[2:-2, 2:-2] > 0.5).mean())


def _choose_ela(seed: int) -> float:
    """The ELA giving about :data:`TARGET_GLACIER_FRACTION` glacier cover (bisection)."""
    probe = W.build_world(region_grid(), seed, {})
    z, res = probe.z, probe.grid.resolution
    lo, hi = float(np.quantile(z, 0.05)), float(np.quantile(z, 0.9))
    for _ in range(9):
        mid = 0.5 * (lo + hi)
        if _cover_fraction(z, res, mid) > TARGET_GLACIER_FRACTION:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _centres(row0: int, nrows: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """x (columns) and y (rows) of the 10 m subpixel centres of output rows row0..+nrows."""
    x = LEFT + (np.arange(SHAPE[1] * SUB) + 0.5) * SUB_RES_M
    y = TOP - (row0 * SUB + np.arange(nrows * SUB) + 0.5) * SUB_RES_M
    return x, y


def _glacier_mask(world: W.World) -> NDArray[np.bool_]:
    """The 10 m glacier mask of the scene: the world's cover without parts under 0.01 km2 and
    with holes under 0.005 km2 filled."""
    x, y = _centres(0, SHAPE[0])
    mask = world.glacier(YEAR, x, y)
    min_px = MIN_GLACIER_M2 / SUB_RES_M**2
    lab, n = ndimage.label(~mask)
    if n:
        size = ndimage.sum(np.ones_like(mask), lab, np.arange(1, n + 1))
        mask |= np.isin(lab, np.flatnonzero(size < min_px / 2) + 1)
    lab, n = ndimage.label(mask)
    if n:
        size = ndimage.sum(mask, lab, np.arange(1, n + 1))
        mask &= ~np.isin(lab, np.flatnonzero(size < min_px) + 1)
    return np.asarray(mask)


def _unit(noise: NDArray[np.float64]) -> NDArray[np.float64]:
    """fbm noise (about -1.5..1.5) to 0..1."""
    return np.asarray(np.clip(0.5 + noise / 1.6, 0.0, 1.0))


def _mix(a: tuple[float, ...], b: tuple[float, ...], t: NDArray[Any]) -> NDArray[np.float64]:
    """(4, rows, cols) spectra a..b by weight t in 0..1."""
    av = np.asarray(a)[:, None, None]
    bv = np.asarray(b)[:, None, None]
    return np.asarray(av + (bv - av) * t[None])


def _render_block(
    world: W.World, sc: W.Scene, glacier: NDArray[np.bool_], row0: int, nrows: int, seed: int
) -> NDArray[np.float64]:
    """TOA reflectance (4, nrows, cols) of output rows row0..+nrows: rendered on the 10 m
    subpixels and averaged over each 30 m pixel."""
    x, y = _centres(row0, nrows)
    s = world.surface(YEAR, x, y)
    z, slope = s.z.astype(np.float64), s.slope.astype(np.float64)
    ela = world.epochs[YEAR].ela_m
    r, c = W.pixel_keys(x, y)

    # Rock: lithology patches dark..bright, texture; vegetation low down.
    litho = _unit(1.3 * W.fbm(x, y, seed + 101, 4000.0, 80.0, hurst=0.9)) ** 1.3
    tex = 0.12 * W.hash_normal(seed, 7, r, c) + 0.08 * W.fbm(x, y, seed + 102, 160.0, 20.0)
    refl = _mix(ROCK_DARK, ROCK_BRIGHT, litho) * (1.0 + tex)[None]
    veg = s.classes == W.CLASS_CODES["vegetation"]
    refl = np.where(veg[None], _mix(VEGETATION, ROCK_DARK, 0.4 * litho), refl)

    # Seasonal snow off the glaciers: high, not too steep, patchy; partly thin over rock.
    patch = 350.0 * W.fbm(x, y, seed + 103, 2500.0, 40.0, hurst=0.7)
    snowline = ela + 260.0
    depth = (z + patch - snowline) / 220.0 - np.clip((slope - 30.0) / 12.0, 0.0, 2.0)
    f_snow = np.clip(depth, 0.0, 1.0) * ~glacier
    seasonal = _mix(SNOW_DIRTY, SNOW_CLEAN, _unit(W.fbm(x, y, seed + 104, 800.0, 40.0)))
    refl = refl * (1 - f_snow[None]) + seasonal * f_snow[None]

    # Glacier surfaces by altitude relative to the ELA, with dirt and debris towards the tongue.
    zw = z + 70.0 * W.fbm(x, y, seed + 105, 2000.0, 30.0, hurst=0.75)
    above = np.clip((zw - ela) / 250.0, 0.0, 1.0)  # 0 at the ELA, 1 well above
    snow = _mix(SNOW_DIRTY, SNOW_CLEAN, np.clip(0.35 + 0.65 * above, 0, 1) ** 0.7)
    snow = snow * (1 - 0.15 * _unit(W.fbm(x, y, seed + 106, 600.0, 30.0)))[None]
    below = np.clip((ela - zw) / 500.0, 0.0, 1.0)  # 0 at the ELA, 1 far below
    dirt = np.clip(0.2 + 0.9 * below + 0.35 * W.fbm(x, y, seed + 107, 1200.0, 20.0), 0, 1)
    ice = _mix(ICE_CLEAN, ICE_DIRTY, dirt)
    firn_w = np.clip(1.0 - np.abs(zw - ela) / 90.0, 0.0, 1.0)
    ice = ice * (1 - firn_w[None]) + np.asarray(FIRN)[:, None, None] * firn_w[None]
    f_debris = np.clip(
        (ela - 120.0 - zw) / 160.0 + 0.6 * W.fbm(x, y, seed + 108, 700.0, 20.0), 0.0, 1.0
    )
    deb = np.asarray(DEBRIS)[:, None, None] * (1.0 + 0.5 * (litho - 0.5) + tex)[None]
    ice = ice * (1 - f_debris[None]) + deb * f_debris[None]
    t_snow = np.clip((zw - ela) / 60.0 + 0.5, 0.0, 1.0)
    surf_ice = snow * t_snow[None] + ice * (1 - t_snow[None])
    lake = (world.physics_at(world.epochs[YEAR].lake, x, y) > 0.5) & ~glacier
    refl = np.where(glacier[None], surf_ice, refl)
    refl = np.where(lake[None], np.asarray(WATER)[:, None, None], refl)
    refl = np.clip(refl + 0.006 * W.hash_normal(seed, 8, r, c)[None], 0.005, 1.0)

    # Light: direct (cosine, cast and cloud shadows) + diffuse sky light (by sky view).
    cos_i = W.illumination(s.dzdx, s.dzdy, sc.sun_elev_deg, sc.sun_azim_deg).astype(np.float64)
    shade = (world.physics_at(sc.cast, x, y) > 0.5) | (world.physics_at(sc.cloud_shadow, x, y) > 0.5)
    direct = np.where(shade, 0.0, cos_i) / math.sin(math.radians(sc.sun_elev_deg))
    svf = 0.5 * (1.0 + np.cos(np.radians(slope)))
    sky = np.asarray(SKY)[:, None, None]
    light = sky * svf[None] + (1 - sky) * direct[None]
    path = np.asarray(PATH)[:, None, None] * np.exp(-(z - 3000.0) / 8000.0)[None]
    toa = path + np.asarray(TRANS)[:, None, None] * refl * light
    cloud = np.clip(world.physics_at(sc.cloud, x, y), 0.0, 1.0)[None]
    toa = toa * (1 - cloud) + np.asarray(CLOUD_TOA)[:, None, None] * cloud
    # Integrate the subpixels (mixed pixels at every edge).
    h, w = nrows, SHAPE[1]
    return np.asarray(toa.reshape(4, h, SUB, w, SUB).mean(axis=(2, 4)))


def _sensor(toa: NDArray[np.float64], seed: int) -> NDArray[np.uint8]:
    """ETM+-like DN: slight optics blur, 16-detector banding, noise, 8-bit with saturation,
    and a slanted scene edge of nodata in the north-east corner."""
    rng = np.random.default_rng([seed, 17])
    blurred = np.stack([ndimage.gaussian_filter(b, 0.45, mode="nearest") for b in toa])
    gain = 1.0 + DETECTOR_GAIN_SD * rng.standard_normal((4, 16))
    rows = np.arange(SHAPE[0]) % 16
    dn = blurred / DN_SCALE * gain[:, rows][:, :, None]
    dn += NOISE_DN * rng.standard_normal(dn.shape)
    out = np.clip(np.floor(dn + 0.5), 1, 255).astype(np.uint8)
    rr, cc = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    out[:, cc - 0.21 * rr > SHAPE[1] - 30] = 0
    return out


@contextlib.contextmanager
def _fixed_gpkg_date() -> Iterator[None]:
    """GeoPackages record their write time; fix it so the file is the same byte for byte."""
    import pyogrio

    key = "OGR_CURRENT_DATE"
    old = pyogrio.get_gdal_config_option(key)
    pyogrio.set_gdal_config_options({key: "2024-01-01T00:00:00.000Z"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({key: old})


def _write_inventory(path: Path, mask: NDArray[np.bool_], world: W.World, seed: int) -> int:
    """The 10 m glacier mask as RGI 6-like outlines (EPSG:4326); returns the glacier count."""
    import geopandas as gpd
    import rasterio.features
    from affine import Affine
    from shapely.geometry import shape

    tr = Affine(SUB_RES_M, 0.0, LEFT, 0.0, -SUB_RES_M, TOP)
    geoms = [
        shape(g)
        for g, _ in rasterio.features.shapes(mask.astype(np.uint8), mask=mask, transform=tr)
    ]
    utm = gpd.GeoSeries(geoms, crs=CRS)  # every part >= 0.01 km2 (see _glacier_mask)
    utm = utm.iloc[np.argsort(-utm.area.to_numpy(), kind="stable")].reset_index(drop=True)
    area = utm.area.to_numpy() / 1e6
    cent = utm.centroid.to_crs("EPSG:4326")
    zc = [
        world.sample(world.z, np.array([p.x]), np.array([p.y]))[0, 0]
        for p in utm.representative_point()
    ]
    n = len(utm)
    gdf = gpd.GeoDataFrame(
        {
            "RGIId": [f"RGI60-14.9{i + 1:04d}" for i in range(n)],
            "GLIMSId": [f"G{c.x * 1000:06.0f}E{c.y * 1000:05.0f}N" for c in cent],
            "BgnDate": [DATE.replace("-", "")] * n,
            "CenLon": cent.x.to_numpy(),
            "CenLat": cent.y.to_numpy(),
            "O1Region": ["14"] * n,
            "O2Region": ["14-02"] * n,
            "Area": area.round(4),
            "Zmed": np.round(zc),
            "Name": [f"Rgbn glacier {i + 1}" if a >= 1.0 else None for i, a in enumerate(area)],
            "seed": [seed] * n,
        },
        geometry=utm.to_crs("EPSG:4326").to_numpy(),
        crs="EPSG:4326",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    with _fixed_gpkg_date():
        gdf.to_file(path, driver="GPKG", layer=path.stem)
    return n


def _sidecar_text() -> str:
    bands = ", ".join(f"{b}: {i}" for i, b in enumerate(BANDS, start=1))
    return (
        "# Landsat 7 ETM+ bands 1-4, top-of-atmosphere reflectance as 8-bit DN\n"
        f"sensor: {SENSOR}\n"
        f"date: {DATE}\n"
        f"bands: {{{bands}}}\n"
        f"scale: {DN_SCALE}\n"
        f"offset: {DN_OFFSET}\n"
        "nodata: 0\n"
    )


def write_region(root: Path, seed: int = 0) -> dict[str, Any]:
    """Write the ``rgbn30`` region (year 2002) under ``root``; see the module docstring.

    Returns ``{"region", "year", "image", "sidecar", "optical_dir", "inventory",
    "region_config", "glacier_fraction", "n_glaciers", "ela_m"}``; ``glacier_fraction`` is
    that of the 30 m label (pixel centre inside an outline) over the whole scene.
    """
    root = Path(root)
    grid = region_grid()
    ela = _choose_ela(seed)
    world = W.build_world(grid, seed, {YEAR: ela})
    sc = W.scene(world, 1, SUN_ELEV_DEG, SUN_AZIM_DEG, cloud_fraction=0.04)
    mask = _glacier_mask(world)
    toa = np.empty((4, *SHAPE))
    for row0 in range(0, SHAPE[0], BLOCK_ROWS):
        n = min(BLOCK_ROWS, SHAPE[0] - row0)
        sub = mask[row0 * SUB : (row0 + n) * SUB]
        toa[:, row0 : row0 + n] = _render_block(world, sc, sub, row0, n, seed)
    dn = _sensor(toa, seed)

    opt_dir = root / "data" / REGION / str(YEAR) / "optical"
    image = opt_dir / f"{SCENE}.tif"
    sidecar = opt_dir / f"{SCENE}.tif.bands.yaml"
    tags = {"SENSOR": SENSOR, "ACQUISITION_DATE": DATE, "SEED": str(seed)}
    write_raster(image, dn, grid, list(BANDS), nodata=0, tags=tags)
    sidecar.write_text(_sidecar_text())
    inventory = root / "data" / "inventory" / f"{REGION}_{YEAR}.gpkg"
    n_glaciers = _write_inventory(inventory, mask, world, seed)
    label = mask[SUB // 2 :: SUB, SUB // 2 :: SUB]  # the 10 m cell at each pixel centre
    return {
        "region": REGION,
        "year": YEAR,
        "image": image,
        "sidecar": sidecar,
        "optical_dir": opt_dir,
        "inventory": inventory,
        "region_config": {
            "crs": CRS,
            "bounds": [float(b) for b in grid.bounds],
            "resolution_m": int(RES_M),
            "years": [YEAR],
        },
        "glacier_fraction": float(label.mean()),
        "n_glaciers": n_glaciers,
        "ela_m": round(ela, 1),
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    info = write_region(a.root, a.seed)
    json.dump(info, sys.stdout, indent=1, default=str)
    print()
