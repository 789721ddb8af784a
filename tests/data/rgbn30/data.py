"""A seeded stand-in for a real user case: a 30 m Landsat 7 ETM+-like scene with only blue,
green, red and NIR as 8-bit DN, and the glacier inventory drawn into it.

``write_region(root, seed)`` writes, under ``root``, the layout of README "Real data" for the
region ``rgbn30`` and the year 2002::

    data/rgbn30/2002/optical/LE07_149035_20020912_toa_rgbn.tif             uint8 DN, 0 = nodata
    data/rgbn30/2002/optical/LE07_149035_20020912_toa_rgbn.tif.bands.yaml  the generic sidecar
    data/inventory/rgbn30_2002.gpkg                                        RGI 6-like outlines

and returns the paths and the ``region_config`` (crs, bounds, resolution_m, years) whose grid
is the scene's pixel grid. The sidecar is ``<image name>.bands.yaml`` (``scene.tif.bands.yaml``):
:func:`glaciermap.ingest.optical.read_generic_scene` finds the image by removing ``.bands.yaml``.

Terrain, glacier extent (balance-flux model), proglacial lakes, cast shadows and clouds come
from :mod:`glaciermap.synthetic.world` (physics grid 20 m). The glacier extent is then fixed
on a 10 m subpixel grid, and the four bands are rendered here at 10 m and integrated to 30 m, so the
edges are mixed pixels. What makes the scene hard, as real imagery of a glacierised range is:

* snow and ice brightness varies: clean and dirty snow, firn, clean and dirty bare ice;
  snow in cast shadow is as dark as sunlit bright rock;
* rock varies from dark (schist) to bright (granite) in large lithology patches; steep
  walls (> 45 degrees) hold no ice, so peaks and aretes stand out of the ice as rock;
* cast terrain shadow (diffuse, bluish sky light only) on ice and rock, and cosine shading;
* seasonal snow outside the glaciers (patchy, partly thin over rock);
* debris cover (labelled glacier, looks like rock) growing down-glacier below the ELA;
* a few clouds and their shadows (the inventory continues below them);
* top-of-atmosphere effects: path radiance (higher in blue, less at altitude);
* ETM+-like sensor: 16-detector banding, noise, 8-bit quantisation with saturation of the
  visible bands over bright sunlit snow, a slanted scene edge of nodata (DN 0) in one corner.

The inventory is exactly the glacier cover drawn: polygons of the 10 m glacier mask
(connected parts of at least 0.01 km2), in EPSG:4326 as RGI ships; rasterized on the 30 m grid
by pixel centre it gives the glacier label of every pixel.

The ELA is chosen per seed (bisection) for about 57 % glacier cover. Deterministic from the
seed (same bytes for the same seed); about 5 s on 2 cores, peak memory ~250 MB (130 MB of it
the imports).
Run ``python tests/data/rgbn30/data.py ROOT [--seed N]`` to write a region by hand.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ingest.terrain import horn_gradient
from glaciermap.synthetic import world as W

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
DN_SCALE, DN_OFFSET = 0.0033, 0.0  # TOA reflectance = DN * scale + offset; 255 -> 0.84
TARGET_GLACIER_FRACTION = 0.57
SUB = 3  # 10 m subpixels per 30 m pixel side
SUB_RES_M = RES_M / SUB
MIN_GLACIER_M2 = 0.01e6  # RGI's minimum glacier area
BLOCK_ROWS = 40  # output rows rendered at a time (memory)

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
PATH = (0.090, 0.055, 0.032, 0.014)  # path radiance as reflectance, at 3000 m
TRANS = (0.86, 0.89, 0.91, 0.94)  # two-way transmittance
NOISE_DN = 0.7
CLOUD_FRACTION = 0.04
SNOW_PATCH_M, SNOWLINE_ABOVE_ELA_M = 350.0, 260.0  # seasonal snow off the glaciers
DEBRIS_BELOW_ELA_M, DEBRIS_RAMP_M = 120.0, 160.0  # debris cover grows below the ELA
DETECTOR_GAIN_SD = 0.006


# Terrain: massifs ~7 km across (the demo's are ~20 km), so that the scene holds many
# glaciers spread over it rather than one ice cap; a smoother spectrum than the demo's
# (beta 4.4) keeps slopes at a median of ~37 degrees.
TERRAIN_BETA, TERRAIN_WAVELENGTH_M, VALLEY_DEPTH = 4.4, 7000.0, 0.4
RELIEF_M, RELIEF_GAMMA = (3700.0, 6300.0), 1.2
WALL_SLOPE_DEG = 45.0


def region_grid() -> RegionGrid:
    """The scene's pixel grid (and the region grid)."""
    return RegionGrid.from_bounds(CRS, BOUNDS, RES_M)


def _terrain(grid: RegionGrid, seed: int) -> NDArray[np.float64]:
    """Fractal terrain (m) with incised valleys on the physics grid (as
    :func:`glaciermap.synthetic.world.build_world`, with this scene's spectrum)."""
    res = grid.resolution
    rng = np.random.default_rng(seed)
    h = W.fractal_surface(grid.shape, res, rng, TERRAIN_BETA, TERRAIN_WAVELENGTH_M)
    h = W.carve_valleys(h, res, depth=VALLEY_DEPTH, cell_m=100.0)
    h = (h - h.min()) / (h.max() - h.min())
    lo, hi = RELIEF_M
    return np.asarray(lo + (hi - lo) * h**RELIEF_GAMMA)


def _rock_walls(z: NDArray[np.float64], res: float) -> NDArray[np.float64]:
    """0..1, 1 on rock walls: ground steeper than about :data:`WALL_SLOPE_DEG` holds no ice
    (peaks, aretes and headwalls stand out of the accumulation areas as rock)."""
    dzdx, dzdy = horn_gradient(z, res)
    slope = ndimage.gaussian_filter(np.degrees(np.arctan(np.hypot(dzdx, dzdy))), 1.5)
    return np.asarray(np.clip((slope - WALL_SLOPE_DEG) / 10.0 + 0.5, 0.0, 1.0))


def _cover(z: NDArray[np.float64], res: float, ela: float, walls: NDArray[Any]) -> NDArray[Any]:
    """Smooth glacier cover (glacier where > 0.5): balance-flux model minus rock walls."""
    return np.minimum(W.glacier_fraction(z, res, ela), 1.0 - walls).astype(np.float32)


def _choose_ela(z: NDArray[np.float64], res: float, walls: NDArray[Any]) -> float:
    """The ELA giving about :data:`TARGET_GLACIER_FRACTION` glacier cover inside the scene
    (bisection; the physics grid has 2 cells of margin on every side)."""
    lo, hi = float(np.quantile(z, 0.0)), float(np.quantile(z, 0.9))
    for _ in range(9):
        mid = 0.5 * (lo + hi)
        if (_cover(z, res, mid, walls)[2:-2, 2:-2] > 0.5).mean() > TARGET_GLACIER_FRACTION:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def build_world(seed: int) -> W.World:
    """The physics of the scene: terrain, one glacier state (2002) and its lakes."""
    grid = W.physics_grid(region_grid())
    res = grid.resolution
    z = _terrain(grid, seed)
    walls = _rock_walls(z, res)
    ela = _choose_ela(z, res, walls)
    cover = _cover(z, res, ela, walls)
    lia = _cover(z, res, ela - 150.0, walls) > 0.5  # Little Ice Age forefields
    dzdx, dzdy = horn_gradient(z, res)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    hollow = z - ndimage.gaussian_filter(z, 400.0 / res) < -2.0
    proglacial = lia & (cover < 0.3) & (slope < 10.0) & hollow
    lake = ndimage.binary_opening(proglacial, iterations=1).astype(np.float32)
    epoch = W.EpochState(YEAR, ela, cover, ndimage.gaussian_filter(lake, 0.7))
    return W.World(
        grid=grid,
        seed=seed,
        z=z,
        z_spline=ndimage.spline_filter(z, order=3, mode="nearest"),
        union=cover,
        epochs={YEAR: epoch},
    )


def _centres(row0: int, nrows: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """x (columns) and y (rows) of the 10 m subpixel centres of output rows row0..+nrows."""
    x = LEFT + (np.arange(SHAPE[1] * SUB) + 0.5) * SUB_RES_M
    y = TOP - (row0 * SUB + np.arange(nrows * SUB) + 0.5) * SUB_RES_M
    return x, y


def _glacier_mask(world: W.World) -> NDArray[np.bool_]:
    """The 10 m glacier mask of the scene: the world's cover without parts under 0.01 km2 and
    with holes under 0.005 km2 filled."""
    mask = np.zeros((SHAPE[0] * SUB, SHAPE[1] * SUB), dtype=bool)
    for row0 in range(0, SHAPE[0], BLOCK_ROWS):
        n = min(BLOCK_ROWS, SHAPE[0] - row0)
        mask[row0 * SUB : (row0 + n) * SUB] = world.glacier(YEAR, *_centres(row0, n))
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


AUX = ("debris", "bare_ice", "seasonal_snow", "shade", "cloud")
"""Sub-pixel fractions kept per 30 m pixel (for diagnostics): debris cover on glaciers, bare
ice, seasonal snow off glaciers, cast or cloud shadow, cloud."""


def _render_block(
    world: W.World, sc: W.Scene, glacier: NDArray[np.bool_], row0: int, nrows: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """TOA reflectance (4, nrows, cols) of output rows row0..+nrows, rendered on the 10 m
    subpixels and averaged over each 30 m pixel, and the :data:`AUX` fractions."""
    x, y = _centres(row0, nrows)
    s = world.surface(YEAR, x, y)
    z, slope = s.z.astype(np.float64), s.slope.astype(np.float64)
    ela = world.epochs[YEAR].ela_m
    r, c = W.pixel_keys(x, y)

    # Rock: lithology patches dark..bright, texture; vegetation low down.
    litho = np.clip(0.45 + 1.1 * W.fbm(x, y, seed + 101, 4000.0, 80.0, hurst=0.8), 0.0, 1.0)
    tex = 0.12 * W.hash_normal(seed, 7, r, c) + 0.08 * W.fbm(x, y, seed + 102, 160.0, 20.0)
    refl = _mix(ROCK_DARK, ROCK_BRIGHT, litho) * (1.0 + tex)[None]
    veg = s.classes == W.CLASS_CODES["vegetation"]
    refl = np.where(veg[None], _mix(VEGETATION, ROCK_DARK, 0.4 * litho), refl)

    # Seasonal snow off the glaciers: high, not too steep, patchy; partly thin over rock.
    patch = SNOW_PATCH_M * W.fbm(x, y, seed + 103, 2500.0, 40.0, hurst=0.7)
    depth = (z + patch - (ela + SNOWLINE_ABOVE_ELA_M)) / 220.0
    depth -= np.clip((slope - 32.0) / 10.0, 0.0, 2.0)
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
        (ela - DEBRIS_BELOW_ELA_M - zw) / DEBRIS_RAMP_M
        + 0.6 * W.fbm(x, y, seed + 108, 700.0, 20.0),
        0.0,
        1.0,
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
    cast = world.physics_at(sc.cast, x, y) > 0.5
    shade = cast | (world.physics_at(sc.cloud_shadow, x, y) > 0.5)
    direct = np.where(shade, 0.0, cos_i) / math.sin(math.radians(sc.sun_elev_deg))
    svf = 0.5 * (1.0 + np.cos(np.radians(slope)))
    sky = np.asarray(SKY)[:, None, None]
    light = sky * svf[None] + (1 - sky) * direct[None]
    path = np.asarray(PATH)[:, None, None] * np.exp(-(z - 3000.0) / 8000.0)[None]
    toa = path + np.asarray(TRANS)[:, None, None] * refl * light
    cloud = np.clip(world.physics_at(sc.cloud, x, y), 0.0, 1.0)
    toa = toa * (1 - cloud[None]) + np.asarray(CLOUD_TOA)[:, None, None] * cloud[None]

    # Integrate the subpixels (mixed pixels at every edge).
    def block_mean(a: NDArray[Any]) -> NDArray[np.float64]:
        return np.asarray(a.reshape(*a.shape[:-2], nrows, SUB, SHAPE[1], SUB).mean(axis=(-3, -1)))

    bare = glacier * (1 - t_snow) * (1 - f_debris)
    aux = np.stack(
        [block_mean(f) for f in (glacier * f_debris, bare, f_snow, shade, cloud)]
    ).astype(np.float32)
    return block_mean(toa), aux


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


def _write_inventory(path: Path, mask: NDArray[np.bool_]) -> int:
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
            "Name": [f"Rgbn glacier {i + 1}" if a >= 1.0 else None for i, a in enumerate(area)],
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


@dataclass(frozen=True)
class Rendered:
    world: W.World
    glacier10: NDArray[np.bool_]  # the glacier mask on the 10 m subpixels
    dn: NDArray[np.uint8]  # (4, rows, cols)
    aux: NDArray[np.float32]  # (len(AUX), rows, cols)

    @property
    def label(self) -> NDArray[np.bool_]:
        """Glacier at each 30 m pixel centre (what the inventory rasterizes to)."""
        return self.glacier10[SUB // 2 :: SUB, SUB // 2 :: SUB]


def render(seed: int = 0) -> Rendered:
    """The scene in memory (see the module docstring)."""
    world = build_world(seed)
    sc = W.scene(world, 1, SUN_ELEV_DEG, SUN_AZIM_DEG, cloud_fraction=CLOUD_FRACTION)
    mask = _glacier_mask(world)
    toa = np.empty((4, *SHAPE))
    aux = np.empty((len(AUX), *SHAPE), dtype=np.float32)
    for row0 in range(0, SHAPE[0], BLOCK_ROWS):
        n = min(BLOCK_ROWS, SHAPE[0] - row0)
        sub = mask[row0 * SUB : (row0 + n) * SUB]
        toa[:, row0 : row0 + n], aux[:, row0 : row0 + n] = _render_block(
            world, sc, sub, row0, n, seed
        )
    return Rendered(world, mask, _sensor(toa, seed), aux)


def write_region(root: Path, seed: int = 0) -> dict[str, Any]:
    """Write the ``rgbn30`` region (year 2002) under ``root``; see the module docstring.

    Returns ``{"region", "year", "image", "sidecar", "optical_dir", "inventory",
    "region_config", "glacier_fraction", "n_glaciers", "ela_m"}``; ``glacier_fraction`` is
    that of the 30 m label (pixel centre inside an outline) over the whole scene.
    """
    root = Path(root)
    grid = region_grid()
    rd = render(seed)
    world, mask, dn = rd.world, rd.glacier10, rd.dn
    ela = world.epochs[YEAR].ela_m
    opt_dir = root / "data" / REGION / str(YEAR) / "optical"
    image = opt_dir / f"{SCENE}.tif"
    sidecar = opt_dir / f"{SCENE}.tif.bands.yaml"
    tags = {"SENSOR": SENSOR, "ACQUISITION_DATE": DATE, "SEED": str(seed)}
    write_raster(image, dn, grid, list(BANDS), nodata=0, tags=tags)
    sidecar.write_text(_sidecar_text())
    inventory = root / "data" / "inventory" / f"{REGION}_{YEAR}.gpkg"
    n_glaciers = _write_inventory(inventory, mask)
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
        "glacier_fraction": float(rd.label.mean()),
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
