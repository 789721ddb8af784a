"""A synthetic demo world, written in the formats real products ship in.

The world is deterministic from a seed and physically motivated:

* terrain: fractal (spectral synthesis, power spectrum ~ f^-beta) with the low ground
  flattened into valley floors, elevations in metres;
* glaciers: a balance-flux model. The surface mass balance is linear in elevation around the
  equilibrium-line altitude (ELA), ``b = gradient * (z - ELA)``, capped in the accumulation
  zone; ice flux is routed downhill (D8) from high to low ground and a cell is glacierised
  while the accumulated flux stays positive, so tongues extend down valleys below the ELA.
  A later epoch with a higher ELA has retreated tongues. Tongues are widened in proportion
  to the square root of the flux (wider valleys carry more ice);
* optical reflectance from end-member spectra (snow, firn, ice, rock, debris, vegetation,
  water, cloud) modulated by illumination (sun elevation/azimuth, cosine of incidence),
  with terrain cast shadows and cloud shadows (clouds at 2 km, shadows displaced away from
  the sun; flagged in SCL class 3 and QA_PIXEL bit 4);
* debris-covered tongues (``debris_below_ela_m`` below the ELA): optically like rock, but
  smooth in the DEM and incoherent in InSAR, so optical features alone miss them;
* SAR backscatter from the local incidence angle per surface class, with gamma speckle,
  layover (bright, incoherent) and radar shadow (noise floor) from the viewing geometry,
  and InSAR coherence that is low on moving ice and high on stable rock, with per-pair noise
  and spatially patchy decorrelation.

Products written (paths from :func:`product_paths`):

* Sentinel-2 L2A-style scene folders with 10 m and 20 m band GeoTIFFs (uint16 with the
  processing-baseline >= 04.00 offset ``BOA_ADD_OFFSET=-1000``, quantification 10000), a scene
  classification layer (SCL, 20 m) and an ``MTD_MSIL2A.xml`` carrying offset and
  quantification value;
* a Landsat 5 TM Collection 2 Level-2-style scene (30 m, ``SR_B1..B5, SR_B7`` with scale
  2.75e-5 and offset -0.2, ``QA_PIXEL`` bit flags);
* Sentinel-1-style RTC backscatter (linear gamma0 power, EPSG:4326) per date and
  polarisation, and InSAR coherence per pair, on their own geographic grid;
* Copernicus-DEM-style 1-degree tiles (``Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif``,
  1 arc-second, EPSG:4326, pixel-centre registration). Unlike real tiles, only the part
  covering the world holds values; the rest is nodata (-32767);
* glacier inventories per epoch (GeoPackage, EPSG:4326, RGI 6-like columns).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import rasterio.warp
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS
from scipy import ndimage
from shapely.geometry import shape

from glaciermap.grid import RegionGrid
from glaciermap.io import atomic_path
from glaciermap.terrain import horn_gradient

log = logging.getLogger(__name__)

WORLD_RES_M = 10.0
"""Resolution of the synthetic world (that of Sentinel-2's finest bands)."""

OPTICAL_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")

# Reflectance end-members (blue, green, red, nir, swir1, swir2), rounded from USGS/ASTER
# spectral library values for the broad bands of Sentinel-2 / Landsat.
ENDMEMBERS: dict[str, tuple[float, ...]] = {
    "snow": (0.95, 0.93, 0.90, 0.80, 0.10, 0.07),
    "firn": (0.78, 0.76, 0.73, 0.62, 0.07, 0.05),
    "ice": (0.55, 0.50, 0.45, 0.30, 0.04, 0.03),
    "rock": (0.11, 0.14, 0.17, 0.24, 0.30, 0.24),
    "debris": (0.10, 0.12, 0.15, 0.21, 0.26, 0.21),  # supraglacial debris: rock-like
    "vegetation": (0.04, 0.08, 0.05, 0.38, 0.20, 0.10),
    "water": (0.08, 0.07, 0.05, 0.02, 0.01, 0.005),
    "cloud": (0.72, 0.72, 0.72, 0.72, 0.55, 0.45),
}
CLASS_CODES = {
    "rock": 0,
    "vegetation": 1,
    "snow": 2,
    "firn": 3,
    "ice": 4,
    "water": 5,
    "debris": 6,
}

# Sentinel-1 C-band: mean gamma0 (dB) at 35 degrees local incidence, VV and VH.
SAR_DB = {
    "rock": (-8.0, -15.0),
    "debris": (-10.0, -17.0),  # rough, like rock, a little darker (wet ice beneath)
    "vegetation": (-10.0, -16.0),
    "snow": (-11.0, -19.0),  # seasonal snow on land
    "firn": (-9.0, -17.0),  # dry firn/snow in the accumulation area (volume scattering)
    "ice": (-17.0, -25.0),  # wet, smooth glacier surface in late summer
    "water": (-22.0, -28.0),
}
SAR_COHERENCE = {
    "rock": 0.75,
    "debris": 0.4,  # the ice below moves and melts: coherence drops, unlike on rock
    "vegetation": 0.35,
    "snow": 0.35,
    "firn": 0.12,
    "ice": 0.12,
    "water": 0.05,
}

S2_BANDS = {  # band id -> (common name, resolution m)
    "B02": ("blue", 10),
    "B03": ("green", 10),
    "B04": ("red", 10),
    "B08": ("nir", 10),
    "B11": ("swir1", 20),
    "B12": ("swir2", 20),
}
TM_BANDS = {
    "SR_B1": "blue",
    "SR_B2": "green",
    "SR_B3": "red",
    "SR_B4": "nir",
    "SR_B5": "swir1",
    "SR_B7": "swir2",
}


@dataclass(frozen=True)
class EpochSpec:
    """One epoch of the demo world."""

    year: int
    sensor: str  # "sentinel-2" or "landsat-5"
    ela_m: float
    optical_dates: tuple[str, ...]
    sar_dates: tuple[str, ...] = ()
    sar_pols: tuple[str, ...] = ("VV", "VH")
    coherence: bool = True
    cloud_fraction: float = 0.1
    inventory: bool = True


@dataclass(frozen=True)
class WorldSpec:
    """A demo region: its grid and the epochs to write."""

    region: str
    grid: RegionGrid
    seed: int
    epochs: tuple[EpochSpec, ...]
    margin_m: float = 1000.0
    relief_m: tuple[float, float] = (3200.0, 6400.0)
    mass_balance_gradient: float = 0.007  # m w.e. per m elevation per year
    debris_below_ela_m: float = 100.0  # tongues this far below the ELA are debris-covered
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def utm_zone(self) -> int:
        epsg = self.grid.rio_crs.to_epsg() or 32643
        return epsg % 100


def world_specs(config: Mapping[str, Any]) -> list[WorldSpec]:
    """Demo worlds described by a workflow configuration (``demo.worlds`` + ``regions``)."""
    demo = config.get("demo") or {}
    specs = []
    for i, (region, world) in enumerate(sorted((demo.get("worlds") or {}).items())):
        reg = config["regions"][region]
        grid = RegionGrid.from_bounds(reg["crs"], reg["bounds"], float(reg["resolution_m"]))
        epochs = []
        for year, ep in sorted(world["epochs"].items(), key=lambda kv: int(kv[0])):
            epochs.append(
                EpochSpec(
                    year=int(year),
                    sensor=str(ep["sensor"]),
                    ela_m=float(ep["ela_m"]),
                    optical_dates=tuple(str(d) for d in ep["optical_dates"]),
                    sar_dates=tuple(str(d) for d in ep.get("sar_dates", ())),
                    sar_pols=tuple(ep.get("sar_pols", ("VV", "VH"))),
                    coherence=bool(ep.get("coherence", True)),
                    cloud_fraction=float(ep.get("cloud_fraction", 0.1)),
                    inventory=bool(ep.get("inventory", True)),
                )
            )
        specs.append(
            WorldSpec(
                region=region,
                grid=grid,
                seed=int(demo.get("seed", 0)) * 1000 + int(world.get("seed", i)),
                epochs=tuple(epochs),
                margin_m=float(world.get("margin_m", 1000.0)),
                debris_below_ela_m=float(world.get("debris_below_ela_m", 100.0)),
            )
        )
    return specs


# --------------------------------------------------------------------------- product names


def _compact(date: str) -> str:
    return date.replace("-", "")


def _s2_tile_id(spec: WorldSpec) -> str:
    return f"T{spec.utm_zone:02d}SDV"


def _s2_product(spec: WorldSpec, date: str, idx: int) -> tuple[str, str]:
    sensing = f"{_compact(date)}T0546{idx:02d}"
    sat = "S2B" if idx % 2 else "S2A"
    name = f"{sat}_MSIL2A_{sensing}_N0500_R048_{_s2_tile_id(spec)}_20230301T101010"
    return name, sensing


def _landsat_product(date: str) -> str:
    return f"LT05_L2SP_150035_{_compact(date)}_20200902_02_T1"


def _dem_tile_name(lat: int, lon: int) -> str:
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"Copernicus_DSM_COG_10_{ns}{abs(lat):02d}_00_{ew}{abs(lon):03d}_00_DEM.tif"


def world_grid(spec: WorldSpec) -> RegionGrid:
    """The 10 m grid of the synthetic world: the region plus a margin, snapped to 10 m."""
    left, bottom, right, top = spec.grid.bounds
    m = spec.margin_m
    r = WORLD_RES_M
    bounds = (
        math.floor((left - m) / r) * r,
        math.floor((bottom - m) / r) * r,
        math.ceil((right + m) / r) * r,
        math.ceil((top + m) / r) * r,
    )
    return RegionGrid.from_bounds(spec.grid.crs, bounds, r)


def _geo_bounds(spec: WorldSpec) -> tuple[float, float, float, float]:
    wg = world_grid(spec)
    inner = (  # keep half a kilometre inside the world so warps never run off its edge
        wg.bounds[0] + 500,
        wg.bounds[1] + 500,
        wg.bounds[2] - 500,
        wg.bounds[3] - 500,
    )
    b = rasterio.warp.transform_bounds(wg.rio_crs, "EPSG:4326", *inner, densify_pts=21)
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _dem_tiles(spec: WorldSpec) -> list[tuple[int, int]]:
    w, s, e, n = _geo_bounds(spec)
    return [
        (lat, lon)
        for lat in range(math.floor(s), math.floor(n) + 1)
        for lon in range(math.floor(w), math.floor(e) + 1)
    ]


def product_paths(spec: WorldSpec, out_dir: Path | str) -> dict[str, list[Path]]:
    """Every file the world writes, keyed ``"{year}/optical"``, ``"{year}/sar"``, ``"dem"``,
    ``"{year}/inventory"``. Computable without generating anything (for workflow outputs)."""
    out = Path(out_dir)
    paths: dict[str, list[Path]] = {}
    for ep in spec.epochs:
        opt_dir = out / spec.region / str(ep.year) / "optical"
        files: list[Path] = []
        for idx, date in enumerate(ep.optical_dates):
            if ep.sensor == "sentinel-2":
                name, sensing = _s2_product(spec, date, idx)
                tile = _s2_tile_id(spec)
                files.append(opt_dir / name / "MTD_MSIL2A.xml")
                for band, (_, res) in S2_BANDS.items():
                    files.append(opt_dir / name / f"{tile}_{sensing}_{band}_{res}m.tif")
                files.append(opt_dir / name / f"{tile}_{sensing}_SCL_20m.tif")
            elif ep.sensor == "landsat-5":
                name = _landsat_product(date)
                for band in [*TM_BANDS, "QA_PIXEL"]:
                    files.append(opt_dir / name / f"{name}_{band}.TIF")
            else:
                raise ValueError(f"demo sensor {ep.sensor!r} unknown: use sentinel-2 or landsat-5")
        paths[f"{ep.year}/optical"] = files
        sar_dir = out / spec.region / str(ep.year) / "sar"
        sar: list[Path] = []
        for date in ep.sar_dates:
            for pol in ep.sar_pols:
                sar.append(
                    sar_dir / f"S1A_IW_{_compact(date)}T011520_DVP_RTC20_G_gpuned_5A3C_{pol}.tif"
                )
        if ep.coherence:
            for d1, d2 in zip(ep.sar_dates, ep.sar_dates[1:], strict=False):
                sar.append(
                    sar_dir / f"S1AA_{_compact(d1)}T011520_{_compact(d2)}T011520_VVP012_INT40_G_"
                    "ueF_7C1D_corr.tif"
                )
        paths[f"{ep.year}/sar"] = sar
        if ep.inventory:
            paths[f"{ep.year}/inventory"] = [out / "inventory" / f"{spec.region}_{ep.year}.gpkg"]
    paths["dem"] = [out / "dem" / _dem_tile_name(lat, lon) for lat, lon in _dem_tiles(spec)]
    return paths


def all_product_paths(specs: list[WorldSpec], out_dir: Path | str) -> list[Path]:
    """Sorted, de-duplicated list of all files of several worlds (DEM tiles may be shared)."""
    seen: set[Path] = set()
    for spec in specs:
        for files in product_paths(spec, out_dir).values():
            seen.update(files)
    return sorted(seen)


# --------------------------------------------------------------------------- terrain + ice


def fractal_surface(
    shape: tuple[int, int],
    res_m: float,
    rng: np.random.Generator,
    beta: float = 3.2,
    max_wavelength_m: float = 12000.0,
) -> NDArray[np.float64]:
    """Gaussian random field with power spectrum ~ f^-beta, scaled to [0, 1]."""
    ny, nx = shape
    fy = np.fft.fftfreq(ny, d=res_m)[:, None]
    fx = np.fft.rfftfreq(nx, d=res_m)[None, :]
    f = np.hypot(fx, fy)
    f_min = 1.0 / max_wavelength_m
    amp = np.where(f > 0, np.maximum(f, f_min) ** (-beta / 2.0), 0.0)
    noise = rng.standard_normal((ny, nx // 2 + 1)) + 1j * rng.standard_normal((ny, nx // 2 + 1))
    field = np.fft.irfft2(noise * amp, s=shape)
    lo, hi = np.percentile(field, [0.5, 99.5])
    return np.asarray(np.clip((field - lo) / (hi - lo), 0.0, 1.0))


def _flow_accumulation(z: NDArray[Any]) -> NDArray[np.float64]:
    """Number of cells draining through each cell (D8, pits keep their water)."""
    recv = _d8_receivers(z)
    order = np.argsort(-z, axis=None, kind="stable")
    acc = np.ones(z.size)
    for i in order.tolist():  # high to low: donors are done before their receivers
        r = recv[i]
        if r != i:
            acc[r] += acc[i]
    return acc.reshape(z.shape)


def carve_valleys(
    h: NDArray[Any], res_m: float, depth: float = 0.6, passes: int = 4, cell_m: float = 100.0
) -> NDArray[np.float64]:
    """Incise a dendritic valley network: stream-power-like erosion ~ sqrt(drainage area).

    Works on a ``cell_m`` grid (fast D8 loop), the incision is interpolated back to ``h``.
    """
    factor = max(1, round(cell_m / res_m))
    zc = ndimage.zoom(h, 1 / factor, order=1)
    total = np.zeros_like(zc)
    for _ in range(passes):
        acc = _flow_accumulation(zc)
        inc = ndimage.gaussian_filter(depth / passes * np.sqrt(acc / acc.max()), 1.0)
        zc = zc - inc
        total += inc
    up = ndimage.zoom(total, (h.shape[0] / zc.shape[0], h.shape[1] / zc.shape[1]), order=1)
    return np.asarray(h - up[: h.shape[0], : h.shape[1]])


def synth_terrain(spec: WorldSpec, grid: RegionGrid) -> NDArray[np.float32]:
    """Elevation (m) on ``grid``: fractal massif with an incised valley network."""
    rng = np.random.default_rng(spec.seed)
    h = fractal_surface(grid.shape, grid.resolution, rng, beta=4.0, max_wavelength_m=20000.0)
    detail = fractal_surface(grid.shape, grid.resolution, rng, beta=2.0, max_wavelength_m=500.0)
    h = carve_valleys(h, grid.resolution)
    h = (h - h.min()) / (h.max() - h.min())
    lo, hi = spec.relief_m
    z = lo + (hi - lo) * h**1.4 + 15.0 * (detail - 0.5)
    return z.astype(np.float32)


def _d8_receivers(z: NDArray[Any]) -> NDArray[np.int64]:
    """Flat index of the steepest-descent neighbour of every cell (itself for pits)."""
    ny, nx = z.shape
    p = np.pad(z, 1, mode="constant", constant_values=np.inf)
    idx = np.arange(ny * nx).reshape(ny, nx)
    best_drop = np.zeros((ny, nx))
    recv = idx.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            nb = p[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx]
            drop = (z - nb) / math.hypot(dy, dx)
            better = drop > best_drop
            best_drop = np.where(better, drop, best_drop)
            shifted = np.clip(idx + dy * nx + dx, 0, ny * nx - 1)
            recv = np.where(better, shifted, recv)
    return recv.ravel()


def glacier_mask(
    z: NDArray[Any],
    res_m: float,
    ela_m: float,
    gradient: float = 0.007,
    max_cells: int = 250_000,
) -> NDArray[np.bool_]:
    """Glacierised cells from the balance-flux model (see module docstring).

    Computed on a coarsened grid (at most ``max_cells`` cells), returned at ``z``'s shape.
    """
    factor = max(1, math.ceil(math.sqrt(z.size / max_cells)))
    zc = z[: z.shape[0] // factor * factor, : z.shape[1] // factor * factor]
    zc = zc.reshape(zc.shape[0] // factor, factor, zc.shape[1] // factor, factor).mean(axis=(1, 3))
    cres = res_m * factor
    dzdx, dzdy = horn_gradient(zc, cres)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    balance = np.minimum(gradient * (zc - ela_m), 2.0)  # m w.e./yr, capped accumulation
    balance = np.where(slope > 50.0, np.minimum(balance, 0.0), balance)  # steep walls shed snow
    cell_area = cres * cres
    recv = _d8_receivers(zc)
    order = np.argsort(-zc, axis=None, kind="stable")
    flux = (balance * cell_area).ravel().astype(np.float64)
    ice = np.zeros(zc.size, dtype=bool)
    for i in order.tolist():  # as in _flow_accumulation, but only positive flux moves on
        q = flux[i]
        if q > 0.0:
            ice[i] = True
            r = recv[i]
            if r != i:
                flux[r] += q
    ice2 = ice.reshape(zc.shape)
    # Widen tongues: width ~ sqrt(flux); dilate by radius classes.
    q = np.where(ice2, flux.reshape(zc.shape), 0.0)
    width_m = 0.6 * np.sqrt(np.maximum(q, 0.0))  # ~400 m wide at 5e5 m3/yr
    mask = ice2 & (balance > 0)
    for radius in range(1, 6):
        sel = ice2 & (width_m / 2 >= radius * cres)
        if not sel.any():
            break
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        disk = (yy**2 + xx**2) <= radius**2
        mask |= ndimage.binary_dilation(sel, structure=disk)
    mask |= ice2
    mask = ndimage.binary_closing(mask, iterations=1)
    mask = ndimage.binary_fill_holes(mask)
    # Back to the full grid with smooth edges.
    up = ndimage.zoom(mask.astype(np.float32), factor, order=1)
    full = np.zeros(z.shape, dtype=np.float32)
    hh, ww = min(up.shape[0], z.shape[0]), min(up.shape[1], z.shape[1])
    full[:hh, :ww] = up[:hh, :ww]
    full = ndimage.gaussian_filter(full, sigma=max(1.0, factor / 2))
    out = full > 0.5
    labels, n = ndimage.label(out)
    if n:
        sizes = ndimage.sum(out, labels, index=np.arange(1, n + 1))
        small = np.isin(labels, np.flatnonzero(sizes * res_m * res_m < 0.02e6) + 1)
        out &= ~small  # drop patches under 0.02 km2 (below inventory minimum size)
    return np.asarray(out)


# --------------------------------------------------------------------------- surfaces


def surface_classes(
    z: NDArray[Any],
    slope_deg: NDArray[Any],
    glacier: NDArray[np.bool_],
    ela_m: float,
    rng: np.random.Generator,
    res_m: float,
    debris_below_ela_m: float = 100.0,
) -> NDArray[np.uint8]:
    """Per-pixel surface class codes (:data:`CLASS_CODES`) for one epoch."""
    wobble = 120.0 * (fractal_surface(z.shape, res_m, rng, beta=2.5, max_wavelength_m=3000) - 0.5)
    cls = np.full(z.shape, CLASS_CODES["rock"], dtype=np.uint8)
    cls[(z + wobble < ela_m - 1300) & (slope_deg < 30)] = CLASS_CODES["vegetation"]
    seasonal = (z + 3 * wobble > ela_m + 350) & (slope_deg < 35) & ~glacier
    cls[seasonal] = CLASS_CODES["snow"]
    cls[glacier & (z + wobble >= ela_m + 150)] = CLASS_CODES["snow"]
    cls[glacier & (z + wobble >= ela_m) & (z + wobble < ela_m + 150)] = CLASS_CODES["firn"]
    cls[glacier & (z + wobble < ela_m)] = CLASS_CODES["ice"]
    # Debris-covered tongues: optically rock, but smooth (DEM) and incoherent (SAR).
    cls[glacier & (z + wobble < ela_m - debris_below_ela_m)] = CLASS_CODES["debris"]
    # Lakes: flat depressions of the valley floors.
    flat = (slope_deg < 2.0) & ~glacier & (z < ela_m - 600)
    flat = ndimage.binary_opening(flat, iterations=2)
    cls[flat] = CLASS_CODES["water"]
    return cls


def illumination(
    z: NDArray[Any], res_m: float, sun_elev_deg: float, sun_azim_deg: float
) -> NDArray[np.float32]:
    """Cosine of the solar incidence angle on the slope, clipped at 0."""
    dzdx, dzdy = horn_gradient(z, res_m)
    el, az = np.radians(sun_elev_deg), np.radians(sun_azim_deg)
    sx, sy, sz = np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)
    norm = np.sqrt(1 + dzdx**2 + dzdy**2)
    cos_i = (-dzdx * sx - dzdy * sy + sz) / norm
    return np.clip(cos_i, 0.0, 1.0).astype(np.float32)


def _shifted(a: NDArray[Any], dr: int, dc: int, fill: float) -> NDArray[Any]:
    """``a`` moved so that out[r, c] = a[r + dr, c + dc]; ``fill`` outside."""
    out = np.full_like(a, fill)
    h, w = a.shape
    rs, re_ = max(0, -dr), min(h, h - dr)
    cs, ce = max(0, -dc), min(w, w - dc)
    if rs < re_ and cs < ce:
        out[rs:re_, cs:ce] = a[rs + dr : re_ + dr, cs + dc : ce + dc]
    return out


def sun_step(sun_azim_deg: float) -> tuple[float, float]:
    """(row, col) unit step towards the sun (rows grow southwards)."""
    az = np.radians(sun_azim_deg)
    return -float(np.cos(az)), float(np.sin(az))


def cast_shadow(
    z: NDArray[Any],
    res_m: float,
    sun_elev_deg: float,
    sun_azim_deg: float,
    max_dist_m: float = 4000.0,
    step_px: int = 2,
) -> NDArray[np.bool_]:
    """Pixels whose line of sight to the sun is blocked by terrain within ``max_dist_m``."""
    dr, dc = sun_step(sun_azim_deg)
    rise = np.tan(np.radians(sun_elev_deg)) * res_m
    shadow = np.zeros(z.shape, dtype=bool)
    for k in range(step_px, int(max_dist_m / res_m) + 1, step_px):
        ahead = _shifted(z, round(k * dr), round(k * dc), -np.inf)
        shadow |= ahead > z + k * rise
    return shadow


def cloud_shadow(
    cloud: NDArray[np.float32],
    res_m: float,
    sun_elev_deg: float,
    sun_azim_deg: float,
    cloud_height_m: float = 2000.0,
) -> NDArray[np.bool_]:
    """Where thick cloud (> 0.5) casts its shadow: displaced away from the sun."""
    dist_px = cloud_height_m / np.tan(np.radians(sun_elev_deg)) / res_m
    dr, dc = sun_step(sun_azim_deg)
    return np.asarray(_shifted(cloud > 0.5, round(dist_px * dr), round(dist_px * dc), False))


def reflectance(
    classes: NDArray[np.uint8],
    cos_i: NDArray[Any],
    sun_elev_deg: float,
    rng: np.random.Generator,
    shade: NDArray[np.bool_] | None = None,
) -> NDArray[np.float32]:
    """Surface reflectance (6, rows, cols) from end-members, illumination and noise.

    ``shade`` (cast or cloud shadow) leaves only the diffuse part of the light.
    """
    table = np.zeros((len(CLASS_CODES), 6), dtype=np.float32)
    for name, code in CLASS_CODES.items():
        table[code] = ENDMEMBERS[name]
    refl = table[classes].transpose(2, 0, 1)
    # Lambertian terrain effect with a diffuse (sky) part; 1 on flat ground.
    direct = cos_i if shade is None else np.where(shade, 0.0, cos_i)
    light = 0.25 + 0.75 * direct / np.sin(np.radians(sun_elev_deg))
    refl = refl * light[None]
    refl += rng.normal(0.0, 0.008, refl.shape).astype(np.float32)
    return np.clip(refl, 0.0, 1.5).astype(np.float32)


def cloud_field(
    shape: tuple[int, int], res_m: float, fraction: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Cloud optical-thickness proxy in [0, 1]; ``fraction`` of the scene exceeds 0.5."""
    if fraction <= 0:
        return np.zeros(shape, dtype=np.float32)
    f = fractal_surface(shape, res_m, rng, beta=3.0, max_wavelength_m=4000)
    thr = np.quantile(f, 1 - fraction)
    return np.clip((f - thr) / 0.1 + 0.5, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- writers


def _resample(
    arr: NDArray[Any],
    src: RegionGrid,
    dst_crs: CRS | str,
    dst_transform: Affine,
    dst_shape: tuple[int, int],
    method: rasterio.enums.Resampling,
    nodata: float = np.nan,
) -> NDArray[np.float32]:
    out = np.full(dst_shape, nodata, dtype=np.float32)
    rasterio.warp.reproject(
        arr.astype(np.float32),
        out,
        src_transform=src.transform,
        src_crs=src.rio_crs,
        dst_transform=dst_transform,
        dst_crs=dst_crs,
        resampling=method,
        src_nodata=np.nan,
        dst_nodata=nodata,
    )
    return out


def _write_tif(
    path: Path,
    data: NDArray[Any],
    crs: CRS | str,
    transform: Affine,
    nodata: float | None,
    descriptions: list[str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    if data.ndim == 2:
        data = data[None]
    prof: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": str(data.dtype),
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
    }
    if data.shape[1] >= 256 and data.shape[2] >= 256:
        prof.update(tiled=True, blockxsize=256, blockysize=256)
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **prof) as dst:
            dst.write(data)
            for i, d in enumerate(descriptions or [], start=1):
                dst.set_band_description(i, d)
            if tags:
                dst.update_tags(**tags)


def _sub_grid(world: RegionGrid, res: float, offset: float = 0.0) -> tuple[Affine, tuple[int, int]]:
    """A coarser grid inside ``world`` whose origin sits on ``offset`` + multiples of ``res``."""
    left, bottom, right, top = world.bounds
    x0 = math.ceil((left - offset) / res) * res + offset
    y0 = math.floor((top - offset) / res) * res + offset
    nx = int((right - x0) // res)
    ny = int((y0 - bottom) // res)
    return Affine(res, 0, x0, 0, -res, y0), (ny, nx)


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


def _with_clouds(refl: NDArray[np.float32], cloud: NDArray[np.float32]) -> NDArray[np.float32]:
    """Blend the cloud end-member over the surface by cloud optical-thickness proxy."""
    cl = cloud[None]
    cloud_refl = np.asarray(ENDMEMBERS["cloud"], np.float32)[:, None, None]
    return np.asarray(refl * (1 - cl) + cloud_refl * cl, dtype=np.float32)


def _write_sentinel2(
    files: list[Path],
    refl: NDArray[np.float32],
    classes: NDArray[np.uint8],
    cloud: NDArray[np.float32],
    c_shadow: NDArray[np.bool_],
    world: RegionGrid,
) -> None:
    """One L2A scene: uint16 DN = reflectance * 10000 + 1000 (baseline >= 04.00)."""
    mtd = next(f for f in files if f.name == "MTD_MSIL2A.xml")
    mtd.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(mtd) as tmp:
        tmp.write_text(_mtd_xml(-1000, 10000))
    cloudy = _with_clouds(refl, cloud)
    for f in files:
        parts = f.stem.split("_")
        if len(parts) < 4:
            continue
        band, res = parts[-2], float(parts[-1].rstrip("m"))
        transform, shp = _sub_grid(world, res)
        if band == "SCL":
            scl = np.choose(
                np.asarray(classes),
                [5, 4, 11, 11, 11, 6, 5],  # rock, debris: not vegetated; snow/firn/ice: snow
            ).astype(np.float32)
            scl = np.where(c_shadow, 3, scl)  # cloud shadow
            scl = np.where(cloud > 0.5, 9, np.where(cloud > 0.2, 8, scl))
            data = _resample(
                scl, world, world.rio_crs, transform, shp, rasterio.enums.Resampling.mode
            )
            _write_tif(f, data.astype(np.uint8), world.rio_crs, transform, 0)
            continue
        common = S2_BANDS[band][0]
        b = OPTICAL_BANDS.index(common)
        data = _resample(
            cloudy[b], world, world.rio_crs, transform, shp, rasterio.enums.Resampling.average
        )
        dn = np.clip(np.round(data * 10000 + 1000), 1, 65535).astype(np.uint16)
        _write_tif(f, dn, world.rio_crs, transform, 0)


def _write_landsat5(
    files: list[Path],
    refl: NDArray[np.float32],
    classes: NDArray[np.uint8],
    cloud: NDArray[np.float32],
    c_shadow: NDArray[np.bool_],
    world: RegionGrid,
) -> None:
    """Collection 2 L2: DN = (reflectance + 0.2) / 2.75e-5; QA_PIXEL bits (C2 definition)."""
    transform, shp = _sub_grid(world, 30.0, offset=15.0)
    cloudy = _with_clouds(refl, cloud)
    for f in files:
        key = f.stem.split("_T1_")[-1]
        if key == "QA_PIXEL":
            snowice = np.isin(classes, [2, 3, 4])
            water = classes == CLASS_CODES["water"]
            qa = np.where(
                snowice, (1 << 5) | (1 << 6), np.where(water, (1 << 7) | (1 << 6), 1 << 6)
            )
            qa = np.where(c_shadow, (1 << 4) | (1 << 10) | (1 << 11), qa)  # shadow, high conf.
            qa = np.where(cloud > 0.5, (1 << 3) | (1 << 8) | (1 << 9), qa)
            qa = np.where((cloud > 0.2) & (cloud <= 0.5), (1 << 1), qa)
            data = _resample(
                qa.astype(np.float32),
                world,
                world.rio_crs,
                transform,
                shp,
                rasterio.enums.Resampling.nearest,
            )
            _write_tif(f, data.astype(np.uint16), world.rio_crs, transform, 1)
            continue
        b = OPTICAL_BANDS.index(TM_BANDS[key])
        data = _resample(
            cloudy[b], world, world.rio_crs, transform, shp, rasterio.enums.Resampling.average
        )
        dn = np.clip(np.round((data + 0.2) / 2.75e-5), 1, 65535).astype(np.uint16)
        _write_tif(f, dn, world.rio_crs, transform, 0)


def _sar_grid(spec: WorldSpec) -> tuple[Affine, tuple[int, int]]:
    w, s, e, n = _geo_bounds(spec)
    res = 0.0002  # degrees, ~20 m
    nx, ny = math.ceil((e - w) / res), math.ceil((n - s) / res)
    return Affine(res, 0, w, 0, -res, n), (ny, nx)


def local_incidence(
    z: NDArray[Any], res_m: float, look_azimuth_deg: float = 100.0, incidence_deg: float = 38.0
) -> NDArray[np.float64]:
    """Local incidence angle (degrees) of a sensor looking towards ``look_azimuth_deg``."""
    dzdx, dzdy = horn_gradient(z, res_m)
    inc, az = np.radians(incidence_deg), np.radians(look_azimuth_deg)
    # Unit vector from the ground to the sensor.
    sx, sy, sz = -np.sin(inc) * np.sin(az), -np.sin(inc) * np.cos(az), np.cos(inc)
    norm = np.sqrt(1 + dzdx**2 + dzdy**2)
    cos_l = (-dzdx * sx - dzdy * sy + sz) / norm
    return np.degrees(np.arccos(np.clip(cos_l, -1.0, 1.0)))


def layover_shadow(
    z: NDArray[Any], res_m: float, look_azimuth_deg: float = 100.0, incidence_deg: float = 38.0
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Radar layover (slope facing the sensor steeper than the incidence angle) and radar
    shadow (slope facing away steeper than the grazing angle, 90 - incidence)."""
    dzdx, dzdy = horn_gradient(z, res_m)
    az = np.radians(look_azimuth_deg)  # horizontal look direction, sensor -> ground
    rise = dzdx * np.sin(az) + dzdy * np.cos(az)  # terrain rise along the look direction
    alpha = np.degrees(np.arctan(rise))
    return alpha > incidence_deg, -alpha > 90.0 - incidence_deg


def _write_sar(
    files: list[Path],
    spec: WorldSpec,
    z: NDArray[Any],
    classes: NDArray[np.uint8],
    world: RegionGrid,
    rng: np.random.Generator,
) -> None:
    transform, shp = _sar_grid(spec)
    theta = local_incidence(z, world.resolution)
    # Backscatter falls with local incidence (cosine law), foreshortened slopes are bright.
    shape_db = 10 * np.log10(
        np.clip(np.cos(np.radians(theta)), 0.05, 1.0) ** 2 / np.cos(np.radians(35)) ** 2
    )
    layover, radar_shadow = layover_shadow(z, world.resolution)
    # Layover sums several slopes into one bright pixel; shadow returns only noise (-25 dB).
    shape_db = np.where(layover, shape_db + 5.0, shape_db)
    coh_mean = np.choose(classes, [SAR_COHERENCE[n] for n in CLASS_CODES])
    coh_mean = np.where(layover, 0.35, np.where(radar_shadow, 0.1, coh_mean))
    for f in files:
        if f.name.endswith("_corr.tif"):
            # Per-pair noise plus spatially coherent decorrelation (wind, moisture, snow).
            patchy = fractal_surface(
                z.shape, world.resolution, rng, beta=3.0, max_wavelength_m=3000
            )
            coh = coh_mean + 0.25 * (patchy - 0.5) + rng.normal(0, 0.1, z.shape)
            data = _resample(
                np.clip(coh, 0, 1),
                world,
                "EPSG:4326",
                transform,
                shp,
                rasterio.enums.Resampling.bilinear,
            )
            _write_tif(f, np.clip(data, 0, 1).astype(np.float32), "EPSG:4326", transform, np.nan)
            continue
        pol = f.stem.split("_")[-1]
        k = 0 if pol in ("VV", "HH") else 1
        base_db = np.choose(classes, [SAR_DB[n][k] for n in CLASS_CODES])
        power = np.where(radar_shadow, 10 ** (-25 / 10), 10 ** ((base_db + shape_db) / 10))
        looks = 4.0
        speckle = rng.gamma(looks, 1.0 / looks, z.shape)
        data = _resample(
            power * speckle, world, "EPSG:4326", transform, shp, rasterio.enums.Resampling.average
        )
        _write_tif(
            f,
            data.astype(np.float32),
            "EPSG:4326",
            transform,
            np.nan,
            tags={"UNITS": "gamma0 linear power", "POLARIZATION": pol},
        )


def _write_dem_tiles(files: list[Path], z: NDArray[Any], world: RegionGrid) -> None:
    """1 arc-second tiles, pixel-centre registered, filled only where the world lies.

    A tile that exists already (shared with another world of the same demo) is updated:
    this world's pixels are written into a copy, which then replaces it.
    """
    w, s, e, n = rasterio.warp.transform_bounds(world.rio_crs, "EPSG:4326", *world.bounds)
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
        win_tr = tile_tr @ Affine.translation(c0, r0)
        part = _resample(
            z,
            world,
            "EPSG:4326",
            win_tr,
            (r1 - r0, c1 - c0),
            rasterio.enums.Resampling.bilinear,
            nodata=-32767.0,
        )
        prof = {
            "driver": "GTiff",
            "width": size,
            "height": size,
            "count": 1,
            "dtype": "float32",
            "crs": "EPSG:4326",
            "transform": tile_tr,
            "nodata": -32767.0,
            "compress": "deflate",
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
        }
        win = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        with atomic_path(f) as tmp:
            if f.exists():
                shutil.copyfile(f, tmp)
                with rasterio.open(tmp, "r+") as dst:
                    old = dst.read(1, window=win)
                    dst.write(np.where(part == -32767.0, old, part), 1, window=win)
            else:
                with rasterio.open(tmp, "w", **prof) as dst:
                    dst.write(part, 1, window=win)


def _write_inventory(
    path: Path,
    mask: NDArray[np.bool_],
    z: NDArray[Any],
    world: RegionGrid,
    spec: WorldSpec,
    year: int,
    date: str,
) -> None:
    labels, _ = ndimage.label(mask)
    geoms, ids = [], []
    for geom, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=mask, transform=world.transform
    ):
        geoms.append(shape(geom))
        ids.append(int(value))
    gdf = gpd.GeoDataFrame({"label": ids}, geometry=geoms, crs=world.rio_crs)
    gdf = gdf.dissolve(by="label", as_index=False)
    zmin = ndimage.minimum(z, labels, gdf["label"].to_numpy())
    zmax = ndimage.maximum(z, labels, gdf["label"].to_numpy())
    zmed = ndimage.median(z, labels, gdf["label"].to_numpy())
    area_km2 = gdf.geometry.area / 1e6
    cent = gdf.geometry.centroid.to_crs("EPSG:4326")
    out = gpd.GeoDataFrame(
        {
            "RGIId": [f"RGI60-99.{spec.seed % 100:02d}{i:03d}" for i in range(len(gdf))],
            "GLIMSId": [f"G{c.x * 1000:06.0f}E{c.y * 1000:05.0f}N" for c in cent],
            "BgnDate": [_compact(date)] * len(gdf),
            "EndDate": ["-9999999"] * len(gdf),
            "CenLon": cent.x.to_numpy(),
            "CenLat": cent.y.to_numpy(),
            "O1Region": ["99"] * len(gdf),
            "Area": area_km2.to_numpy(),
            "Zmin": np.asarray(zmin, dtype=float).round(),
            "Zmax": np.asarray(zmax, dtype=float).round(),
            "Zmed": np.asarray(zmed, dtype=float).round(),
            "Name": [f"{spec.region} glacier {i + 1}" for i in range(len(gdf))],
        },
        geometry=gdf.geometry.to_crs("EPSG:4326"),
        crs="EPSG:4326",
    )
    with atomic_path(path) as tmp:
        out.to_file(tmp, driver="GPKG", layer=path.stem)


def generate_world(spec: WorldSpec, out_dir: Path | str) -> list[Path]:
    """Write every product of one demo world; returns the files written."""
    out_dir = Path(out_dir)
    paths = product_paths(spec, out_dir)
    world = world_grid(spec)
    log.info("demo %s: world grid %s x %s at %.0f m", spec.region, *world.shape, world.resolution)
    z = synth_terrain(spec, world)
    dzdx, dzdy = horn_gradient(z, world.resolution)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    masks = {
        ep.year: glacier_mask(z, world.resolution, ep.ela_m, spec.mass_balance_gradient)
        for ep in spec.epochs
    }
    # Glacier surfaces are smoother than rock: smooth the DEM under the largest extent.
    union = np.logical_or.reduce(list(masks.values()))
    w = ndimage.gaussian_filter(union.astype(np.float32), 3)
    z_dem = (1 - w) * z + w * ndimage.gaussian_filter(z, 4)
    _write_dem_tiles(paths["dem"], z_dem, world)
    for k, ep in enumerate(spec.epochs):
        rng = np.random.default_rng(spec.seed * 100 + k)
        classes = surface_classes(
            z, slope, masks[ep.year], ep.ela_m, rng, world.resolution, spec.debris_below_ela_m
        )
        for idx, date in enumerate(ep.optical_dates):
            doy = dt.date.fromisoformat(date).timetuple().tm_yday
            sun_elev = 62.0 - 0.25 * abs(doy - 172)
            sun_az = 140.0 if ep.sensor == "sentinel-2" else 128.0
            cos_i = illumination(z, world.resolution, sun_elev, sun_az)
            cloud = cloud_field(z.shape, world.resolution, ep.cloud_fraction, rng)
            c_shadow = cloud_shadow(cloud, world.resolution, sun_elev, sun_az) & (cloud <= 0.2)
            shade = cast_shadow(z, world.resolution, sun_elev, sun_az) | c_shadow
            refl = reflectance(classes, cos_i, sun_elev, rng, shade)
            if ep.sensor == "sentinel-2":
                name = _s2_product(spec, date, idx)[0]
                files = [f for f in paths[f"{ep.year}/optical"] if f.parent.name == name]
                _write_sentinel2(files, refl, classes, cloud, c_shadow, world)
            else:
                name = _landsat_product(date)
                files = [f for f in paths[f"{ep.year}/optical"] if f.parent.name == name]
                _write_landsat5(files, refl, classes, cloud, c_shadow, world)
        _write_sar(paths[f"{ep.year}/sar"], spec, z, classes, world, rng)
        if ep.inventory:
            _write_inventory(
                paths[f"{ep.year}/inventory"][0],
                masks[ep.year],
                z,
                world,
                spec,
                ep.year,
                ep.optical_dates[0],
            )
        log.info(
            "demo %s %d: ELA %.0f m, glacier area %.1f km2",
            spec.region,
            ep.year,
            ep.ela_m,
            masks[ep.year].sum() * world.resolution**2 / 1e6,
        )
    return [p for files in paths.values() for p in files]


def generate_demo(config: Mapping[str, Any], out_dir: Path | str | None = None) -> list[Path]:
    """Generate every demo world of a workflow configuration.

    Each world goes to ``out_dir`` if given, else to its region's ``data_dir``.
    """
    written: list[Path] = []
    for spec in world_specs(config):
        target = out_dir or config["regions"][spec.region].get("data_dir", "resources/demo")
        written.extend(generate_world(spec, target))
    return sorted(set(written))
