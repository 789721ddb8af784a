"""The synthetic world behind the demo products: physics on a coarse grid, detail on demand.

The world is deterministic from a seed and physically motivated:

* terrain: fractal (spectral synthesis, power spectrum ~ f^-beta) with an incised dendritic
  valley network, elevations in metres; finer relief comes from hashed multi-octave value
  noise (smoothed away on glacier surfaces, which are smoother than rock);
* glaciers: a balance-flux model. The surface mass balance is linear in elevation around the
  equilibrium-line altitude (ELA), ``b = gradient * (z - ELA)``, capped in the accumulation
  zone; ice flux is routed downhill (D8) from high to low ground and a cell is glacierised
  while the accumulated flux stays positive, so tongues extend down valleys below the ELA.
  A later epoch with a higher ELA has retreated tongues. Tongues are widened in proportion
  to the square root of the flux (wider valleys carry more ice). The steepest tenth of the
  terrain holds no ice (peaks, aretes and headwalls stand out of the ice as rock), and the
  glacier surfaces are the terrain smoothed over ~300 m (ice fills the troughs and buries the
  relief of its bed): median surface slopes of ~20 degrees rather than the rock's ~35;
* proglacial lakes: the deepest hollows of the bed (overdeepenings) on gentle ground of the
  forefield that the Little-Ice-Age glacier (ELA 150 m below the lowest epoch's) covered and
  the epoch's glacier has left, flat in the DEM; so later epochs have more lakes (~0.3-1 % of
  a world whose glaciers retreated far). Flat low valley floors hold lakes too;
* surfaces: snow, firn, ice, debris-covered tongues (``debris_below_ela_m`` below the ELA:
  optically like rock, smooth in the DEM and incoherent in InSAR), seasonal snow patches (an
  amount per epoch, :class:`EpochState`), vegetation low down, turbid water, rock;
  :func:`class_map` gives the class of every pixel;
* optical reflectance (:func:`render_optical`, Sentinel-2 or Landsat 5 TM bands) from
  published end-member spectra (:data:`ENDMEMBERS`) with within-class variability
  (lithology, impurities, grain size, turbidity: :func:`surface_reflectance`) and mixed
  pixels at every class edge, lit (:func:`irradiance`) by the sun on the slope, blue-rich sky
  light seen by the sky-view factor (all that is left in terrain cast shadow, with the light
  reflected by the slopes around), and covered by clouds and their shadows;
* SAR backscatter from the local incidence angle per surface class with gamma speckle,
  layover (bright, incoherent) from the slope facing the sensor and radar shadow where the
  terrain towards the sensor hides the ground (range-extended, like a cast shadow), and
  InSAR coherence that is low on moving ice and water and high on stable rock.

Bounded memory at any world size: everything non-local (terrain, valley incision, the
balance-flux model, ice surfaces, lakes, sky view, cast shadows, clouds, radar shadow) is
computed on a *physics grid* of at most ``max_phys_cells`` cells (20 m for a 20 km world,
~100 m for a full Sentinel-2 tile). Any output grid is then rendered block by block: the
physics fields are interpolated to the block's pixel centres and per-pixel detail and noise
come from an integer hash of the pixel's coordinates. A block therefore does not depend on the
block layout and peak memory depends on the block size, not the world size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.terrain import horn_gradient, horn_gradient_padded
from glaciermap.synthetic.layout import MAX_PHYS_CELLS, SEASONAL_SNOW, WORLD_RES_M

OPTICAL_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")
OPTICAL_SENSORS = ("sentinel-2", "landsat-5")

# Surface reflectance end-members, Sentinel-2 MSI bands B2 B3 B4 B8 B11 B12 (blue, green,
# red, nir, swir1, swir2), for flat, sunlit ground. These are approximate, rounded band means
# of published spectra and ranges, not values read off one table; they were checked against
# late-summer Sentinel-2 L2A samples of labelled glacier sites (the targets of issue 14):
#
# * snow, firn: late-summer, coarse-grained (r ~ 0.5-1 mm), slightly dirty glacier snow.
#   Approximate values from the Wiscombe & Warren (1980) snow albedo model and the
#   Kokhanovsky & Zege (2004) asymptotic radiative-transfer model for such grain sizes (SWIR
#   ~0.01-0.05, falling with grain size and liquid water) with a few per cent of visible
#   darkening by impurities, and from the USGS Spectral Library v7 snow spectra (Kokaly et al.
#   2017). Firn: approximate visible albedo ~0.5-0.65 (albedo table of Cuffey & Paterson
#   2010, The Physics of Glaciers).
# * bare ice: clean (bubbly/blue) to dirty ice, visible ~0.15-0.65, nearly flat in the
#   visible, NIR ~0.7 of green, SWIR ~0.01-0.02. Approximate ranges from Cuffey & Paterson
#   (2010), Klok et al. (2003, Landsat albedo of Morteratschgletscher), Paul et al. (2016,
#   Sentinel-2 glacier facies) and Naegeli et al. (2017, 2019, Sentinel-2/Landsat 8 bare-ice
#   albedo of Swiss glaciers, mostly 0.1-0.4 broadband).
# * rock: approximate band means of USGS Spectral Library v7 / ECOSTRESS (Meerdink et al.
#   2019) granite, schist, basalt and lichen-covered rock spectra: flat, slowly rising to
#   the SWIR, B12/B11 ~0.9-1.0, NDSI ~ -0.2; lichen lowers the visible and raises the NIR;
#   iron-stained rock is red. Supraglacial debris is the local rock (see the renderer).
# * water: turbid proglacial lakes (rock flour): a green peak, NIR ~0.03, SWIR ~0.01;
#   approximate values from the glacial-lake spectra discussed by Gardelle et al. (2011,
#   Hindu Kush-Himalaya glacial lakes) and Bhardwaj et al. (2015, Landsat 8 lake detection in
#   glacial environments); clearer lakes are darker and bluer.
# * vegetation: sparse alpine grassland, approximate USGS Spectral Library v7 green-grass
#   spectrum; rendered as a canopy fraction of 0.3-0.8 over the local rock or soil.
ENDMEMBERS: dict[str, tuple[float, ...]] = {
    "snow": (0.83, 0.82, 0.79, 0.67, 0.024, 0.020),
    "firn": (0.60, 0.59, 0.56, 0.45, 0.025, 0.020),
    "ice": (0.35, 0.36, 0.34, 0.24, 0.015, 0.013),  # a median bare ice (class medians)
    "ice_clean": (0.62, 0.62, 0.58, 0.38, 0.009, 0.008),  # clean, bubble-poor "blue" ice
    "ice_dirty": (0.15, 0.16, 0.16, 0.14, 0.019, 0.016),  # dust, cryoconite, thin debris
    "rock": (0.15, 0.185, 0.195, 0.20, 0.28, 0.265),  # a typical rock
    "rock_dark": (0.062, 0.074, 0.085, 0.095, 0.125, 0.118),  # schist, basalt
    "rock_bright": (0.25, 0.29, 0.31, 0.33, 0.39, 0.36),  # granite, gneiss, limestone
    "rock_lichen": (0.065, 0.08, 0.085, 0.14, 0.17, 0.15),  # lichen-covered rock
    "rock_red": (0.09, 0.12, 0.17, 0.21, 0.25, 0.235),  # iron-stained rock
    "debris": (0.11, 0.14, 0.155, 0.17, 0.22, 0.205),  # supraglacial debris: rock-like
    "vegetation": (0.035, 0.075, 0.045, 0.42, 0.21, 0.10),  # green canopy
    "water": (0.11, 0.17, 0.10, 0.03, 0.010, 0.008),  # turbid proglacial lake
    "water_clear": (0.06, 0.07, 0.045, 0.02, 0.008, 0.006),
    "cloud": (0.72, 0.72, 0.72, 0.72, 0.55, 0.45),
}
# Landsat 5 TM bands 1-5, 7 cover about the same wavelengths as B2 B3 B4 B8 B11 B12, but are
# broader: TM2 (0.52-0.60 um) dilutes narrow green peaks (vegetation, turbid water), TM3 and
# TM4 take in some red edge, and TM5 (1.55-1.75 um) reaches up the rising flank of the snow and
# ice spectrum towards its 1.8 um maximum, so snow and ice are ~20-25 % brighter in TM5 than in
# B11 (approximate factors from band-averaging the spectra above over both sensors' spectral
# response functions; cf. Mandanici & Bitelli 2016 for MSI vs OLI band differences).
TM_FACTORS: dict[str, tuple[float, ...]] = {
    "snow": (1.0, 1.0, 1.0, 1.03, 1.25, 1.02),
    "firn": (1.0, 1.0, 1.0, 1.03, 1.22, 1.02),
    "ice": (1.0, 1.0, 1.0, 1.02, 1.18, 1.02),
    "ice_clean": (1.0, 1.0, 1.0, 1.02, 1.18, 1.02),
    "ice_dirty": (1.0, 1.0, 1.0, 1.02, 1.12, 1.02),
    "vegetation": (1.0, 0.95, 1.06, 0.97, 1.0, 1.02),
    "water": (1.0, 0.93, 1.05, 1.1, 1.0, 1.0),
    "water_clear": (1.0, 0.97, 1.03, 1.05, 1.0, 1.0),
}
# Share of diffuse (sky) light in the irradiance on flat open ground per band: blue-rich
# Rayleigh sky light (approximately 0.5 in the blue falling to 0.25 in the NIR and 0.2 in the
# SWIR at a high, clear site: approximate values, as used in the topographic correction of
# mountain imagery, e.g. Richter 1998). Terrain in cast shadow gets this share times its
# sky-view factor, plus light reflected from the surrounding slopes; so shaded snow keeps
# ~58/49/40/33 % of its sunlit B2/B3/B4/B8 reflectance, as in late-summer Sentinel-2 samples.
DIFFUSE_SHARE = (0.53, 0.45, 0.36, 0.27, 0.20, 0.19)
SENSOR_NOISE = (0.004, 0.004, 0.004, 0.005, 0.004, 0.004)  # reflectance, per band (1 sigma)
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
# Mean 12-day C-band coherence in late summer. Rock stays coherent but far from 1 (snowfall,
# moisture); debris-covered ice keeps some coherence where the debris is thick.
SAR_COHERENCE = {
    "rock": 0.6,
    "debris": 0.35,
    "vegetation": 0.3,
    "snow": 0.3,
    "firn": 0.15,
    "ice": 0.15,
    "water": 0.05,
}
SAR_LOOK_AZIMUTH_DEG = 100.0  # horizontal look direction sensor -> ground (descending-like)
SAR_INCIDENCE_DEG = 38.0
SAR_LOOKS = 4.0  # equivalent number of looks of one 10 m sample

MIN_PHYS_RES_M = 20.0


# --------------------------------------------------------------------------- hashed noise

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _hash64(seed: int, *keys: NDArray[Any] | int) -> NDArray[np.uint64]:
    h = np.asarray(np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    for k in keys:
        kk = np.asarray(k, dtype=np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            h = _splitmix((h ^ kk) + _GOLDEN)
    return h


def hash_uniform(seed: int, *keys: NDArray[Any] | int) -> NDArray[np.float64]:
    """Uniform (0, 1) numbers from integer keys (broadcast together): the same keys give the
    same numbers, whatever else is computed alongside."""
    h = _hash64(seed, *keys)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def hash_uniform4(seed: int, *keys: NDArray[Any] | int) -> NDArray[np.float32]:
    """Four independent uniform (0, 1) numbers (16 bits each, stacked on a new first axis)
    from one hash of the keys: cheap per-pixel noise."""
    h = _hash64(seed, *keys)
    m = np.uint64(0xFFFF)
    parts = [((h >> np.uint64(16 * i)) & m).astype(np.float32) for i in range(4)]
    return (np.stack(parts) + np.float32(0.5)) * np.float32(1.0 / 65536.0)


def hash_normal(seed: int, *keys: NDArray[Any] | int) -> NDArray[np.float64]:
    """Standard normal numbers from integer keys (Box-Muller of two hashed uniforms)."""
    u1 = hash_uniform(seed, *keys, 1)
    u2 = hash_uniform(seed, *keys, 2)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def hash_gamma(seed: int, looks: int, *keys: NDArray[Any] | int) -> NDArray[np.float64]:
    """Gamma(looks, 1/looks) speckle (mean 1) from integer keys: a sum of exponentials."""
    acc = np.zeros(np.broadcast_shapes(*(np.shape(k) for k in keys)))
    for i in range(looks):
        acc -= np.log(hash_uniform(seed, *keys, 100 + i))
    return acc / looks


def value_noise(
    x: NDArray[np.float64], y: NDArray[np.float64], wavelength: float, seed: int
) -> NDArray[np.float64]:
    """Smooth noise in [-1, 1] on the regular grid ``x`` (columns) by ``y`` (rows).

    Random values on a lattice of spacing ``wavelength`` (hashed from the lattice indices),
    interpolated with smoothstep weights: continuous across block edges.
    """
    u, v = x / wavelength, y / wavelength
    i0, j0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - i0, v - j0
    su, sv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    ilo, jlo = int(i0.min()), int(j0.min())
    ii = np.arange(ilo, int(i0.max()) + 2)
    jj = np.arange(jlo, int(j0.max()) + 2)
    lattice = 2.0 * hash_uniform(seed, jj[:, None], ii[None, :]) - 1.0
    ci, rj = i0 - ilo, j0 - jlo
    # Separable: along the columns on every lattice row first (few rows), then the rows.
    along = lattice[:, ci] * (1 - su) + lattice[:, ci + 1] * su
    return np.asarray(along[rj] * (1 - sv)[:, None] + along[rj + 1] * sv[:, None])


def fbm(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    seed: int,
    longest_m: float,
    shortest_m: float,
    hurst: float = 1.0,
) -> NDArray[np.float64]:
    """Fractal (multi-octave) value noise; octave amplitudes ~ wavelength^hurst, the longest
    has amplitude 1; the sum is roughly within [-1.5, 1.5]."""
    out = np.zeros((y.size, x.size))
    wl, k = longest_m, 0
    while wl >= shortest_m:
        out += (wl / longest_m) ** hurst * value_noise(x, y, wl, seed * 31 + k)
        wl, k = wl / 2, k + 1
    return out


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


def _coarsen(z: NDArray[Any], factor: int) -> NDArray[np.float64]:
    zc = z[: z.shape[0] // factor * factor, : z.shape[1] // factor * factor]
    return np.asarray(
        zc.reshape(zc.shape[0] // factor, factor, zc.shape[1] // factor, factor).mean(axis=(1, 3))
    )


def _refine(a: NDArray[Any], shape: tuple[int, int], factor: int) -> NDArray[np.float64]:
    """Bilinear interpolation of ``a`` (cells of ``factor`` x ``factor`` fine cells, as made by
    :func:`_coarsen`) onto the fine grid ``shape``, cell centre on cell centre (fine cell j
    sits at coarse index (j + 0.5) / factor - 0.5); edges held beyond the outer centres."""
    rows = (np.arange(shape[0]) + 0.5) / factor - 0.5
    cols = (np.arange(shape[1]) + 0.5) / factor - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.asarray(
        ndimage.map_coordinates(a.astype(np.float64), [rr, cc], order=1, mode="nearest")
    )


def carve_valleys(
    h: NDArray[Any], res_m: float, depth: float = 0.6, passes: int = 4, cell_m: float = 100.0
) -> NDArray[np.float64]:
    """Incise a dendritic valley network: stream-power-like erosion ~ sqrt(drainage area).

    Works on a ``cell_m`` grid (fast D8 loop), the incision is interpolated back to ``h``.
    """
    factor = max(1, round(cell_m / res_m))
    zc = _coarsen(h, factor)
    total = np.zeros_like(zc)
    for _ in range(passes):
        acc = _flow_accumulation(zc)
        inc = ndimage.gaussian_filter(depth / passes * np.sqrt(acc / acc.max()), 1.0)
        zc = zc - inc
        total += inc
    return np.asarray(h - _refine(total, h.shape, factor))


def glacier_fraction(
    z: NDArray[Any],
    res_m: float,
    ela_m: float,
    gradient: float = 0.007,
    max_cells: int = 250_000,
    min_area_m2: float = 0.02e6,
) -> NDArray[np.float32]:
    """Smooth glacier cover in [0, 1] on ``z``'s grid from the balance-flux model (see module
    docstring); glacierised where > 0.5. Patches under ``min_area_m2`` are dropped.

    The flux is routed on a coarsened grid (at most ``max_cells`` cells).
    """
    factor = max(1, math.ceil(math.sqrt(z.size / max_cells)))
    zc = _coarsen(z, factor)
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
    # Back to z's grid with smooth edges.
    frac = ndimage.gaussian_filter(_refine(mask, z.shape, factor), sigma=max(1.0, factor / 2))
    # Drop small patches with their whole fringe (down to 0.2), so that the margin noise of
    # the rendering cannot lift a part of it over 0.5 again.
    labels, n = ndimage.label(frac > 0.2)
    if n:
        core = ndimage.sum(frac > 0.5, labels, index=np.arange(1, n + 1))
        small = np.isin(labels, np.flatnonzero(core * res_m * res_m < min_area_m2) + 1)
        frac[small] = 0.0
    return frac.astype(np.float32)


def glacier_mask(
    z: NDArray[Any], res_m: float, ela_m: float, gradient: float = 0.007
) -> NDArray[np.bool_]:
    """Glacierised cells of ``z``'s grid (see :func:`glacier_fraction`)."""
    return np.asarray(glacier_fraction(z, res_m, ela_m, gradient) > 0.5)


def smooth_ice_surface(
    z: NDArray[Any], cover: NDArray[Any], res_m: float, sigma_m: float = 300.0
) -> NDArray[np.float64]:
    """Terrain with glacier surfaces: where ``cover`` (smooth glacier cover in [0, 1]) is
    high, ``z`` is replaced by its Gaussian mean (``sigma_m``) over the glacier itself.

    Ice fills the troughs and buries the short-wavelength relief of its bed, so glacier
    surfaces are far gentler than rock (median ~15-20 degrees instead of the ~35 degrees of the
    fractal terrain); the large-scale fall of the valleys stays. Full smoothing from a cover
    of 0.35, so the transition to the rock lies outside the glacier (trough walls).
    """
    w = np.clip(cover / 0.35, 0.0, 1.0)
    w = w * w * (3.0 - 2.0 * w)
    sig = sigma_m / res_m
    num = ndimage.gaussian_filter(z * w, sig, mode="nearest")
    den = ndimage.gaussian_filter(w, sig, mode="nearest")
    zs = np.where(den > 1e-3, num / np.maximum(den, 1e-3), z)
    return np.asarray(z + w * (zs - z))


def sky_view_factor(
    z: NDArray[Any],
    res_m: float,
    max_dist_m: float = 2000.0,
    directions: int = 8,
    cell_m: float = 60.0,
) -> NDArray[np.float32]:
    """Share of the sky hemisphere seen from the ground, from horizon angles ``H`` in
    ``directions`` azimuths within ``max_dist_m``: ``mean(cos^2 H)`` (1 on open flat ground,
    ~0.75 at the foot of steep walls). Computed on a ``cell_m`` grid."""
    factor = max(1, round(cell_m / res_m))
    if min(z.shape) < 4 * factor:
        factor = 1
    zc = _coarsen(z, factor)
    cres = res_m * factor
    acc = np.zeros_like(zc)
    n = max(1, int(max_dist_m / cres))
    for k in range(directions):
        az = 2.0 * math.pi * k / directions
        dr, dc = -math.cos(az), math.sin(az)
        tan_h = np.zeros_like(zc)
        for step in range(1, n + 1):
            rr, cc = round(step * dr), round(step * dc)
            dist = math.hypot(rr, cc) * cres
            ahead = _shifted(zc, rr, cc, -np.inf)
            np.maximum(tan_h, (ahead - zc) / dist, out=tan_h)
        acc += 1.0 / (1.0 + tan_h * tan_h)
    svf = _refine(acc / directions, z.shape, factor) if factor > 1 else acc / directions
    return np.clip(svf, 0.0, 1.0).astype(np.float32)


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
    """Pixels whose line of sight to the sun is blocked by terrain within ``max_dist_m``.

    Also radar shadow: the "sun" is then the sensor, at elevation 90 - incidence.
    """
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


def cloud_field(
    shape: tuple[int, int], res_m: float, fraction: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Cloud optical-thickness proxy in [0, 1]; ``fraction`` of the scene exceeds 0.5."""
    if fraction <= 0:
        return np.zeros(shape, dtype=np.float32)
    f = fractal_surface(shape, res_m, rng, beta=3.0, max_wavelength_m=4000)
    thr = np.quantile(f, 1 - fraction)
    return np.clip((f - thr) / 0.1 + 0.5, 0.0, 1.0).astype(np.float32)


def layover_shadow(
    z: NDArray[Any],
    res_m: float,
    look_azimuth_deg: float = SAR_LOOK_AZIMUTH_DEG,
    incidence_deg: float = SAR_INCIDENCE_DEG,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Radar layover (slope facing the sensor steeper than the incidence angle) and radar
    shadow of the slope itself (facing away steeper than the grazing angle, 90 - incidence)."""
    dzdx, dzdy = horn_gradient(z, res_m)
    return _layover_shadow_from_gradient(dzdx, dzdy, look_azimuth_deg, incidence_deg)


def _layover_shadow_from_gradient(
    dzdx: NDArray[Any], dzdy: NDArray[Any], look_azimuth_deg: float, incidence_deg: float
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    az = np.radians(look_azimuth_deg)  # horizontal look direction, sensor -> ground
    rise = dzdx * np.sin(az) + dzdy * np.cos(az)  # terrain rise along the look direction
    alpha = np.degrees(np.arctan(rise))
    return np.asarray(alpha > incidence_deg), np.asarray(-alpha > 90.0 - incidence_deg)


def radar_shadow(
    z: NDArray[Any],
    res_m: float,
    look_azimuth_deg: float = SAR_LOOK_AZIMUTH_DEG,
    incidence_deg: float = SAR_INCIDENCE_DEG,
) -> NDArray[np.bool_]:
    """Ground hidden from the sensor by terrain nearer to it (range-extended radar shadow):
    a cast shadow with the sensor as the light source."""
    return cast_shadow(z, res_m, 90.0 - incidence_deg, (look_azimuth_deg + 180.0) % 360.0)


# --------------------------------------------------------------------------- the world


def _bilinear(
    field: NDArray[Any], rows: NDArray[np.float64], cols: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``field`` at the (fractional) ``rows`` x ``cols`` (a regular grid, 1-D each), bilinear,
    edges held: what ``map_coordinates(order=1, mode="nearest")`` gives, but separable."""
    h, w = field.shape
    r = np.clip(rows, 0.0, h - 1.0)
    c = np.clip(cols, 0.0, w - 1.0)
    r0 = np.minimum(np.floor(r).astype(np.int64), max(h - 2, 0))
    c0 = np.minimum(np.floor(c).astype(np.int64), max(w - 2, 0))
    fr, fc = r - r0, c - c0
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    lo, hi = int(r0.min()), int(r1.max()) + 1
    sub = np.asarray(field[lo:hi], dtype=np.float64)
    along = sub[:, c0] * (1 - fc) + sub[:, c1] * fc  # every needed row, along the columns
    return np.asarray(along[r0 - lo] * (1 - fr)[:, None] + along[r1 - lo] * fr[:, None])


@dataclass(frozen=True)
class EpochState:
    """One glacier state of a world.

    ``seasonal_snow`` (0..1) sets the snow patches left off the glaciers: their snow line lies
    ``350 - 500 * seasonal_snow`` m above the ELA, lower on north-facing and absent on steep
    (> ~35 degrees) ground. 0: only the highest gentle ground (a warm late summer); 0.2 (the
    default): patches above ~250 m over the ELA; 0.6: a snowfall down to ~50 m above the ELA;
    1: seasonal snow down to 150 m below it (early summer). ``bright`` is the smooth share of
    bright (snow and ice) ground around each cell, lighting shaded ground by reflection from
    the slopes around it (None: the glacier cover).
    """

    year: int
    ela_m: float
    glacier: NDArray[np.float32]  # smooth cover on the physics grid
    lake: NDArray[np.float32]
    seasonal_snow: float = SEASONAL_SNOW
    bright: NDArray[np.float32] | None = None


@dataclass
class World:
    """Physics fields of one world on its coarse grid; renders any 10 m grid on demand."""

    grid: RegionGrid  # the physics grid (covers the rendered world with a margin)
    seed: int
    z: NDArray[np.float64]  # large-scale terrain (m), glacier surfaces included
    z_spline: NDArray[np.float64]  # its cubic spline coefficients
    union: NDArray[np.float32]  # glacier cover of any epoch (smooth)
    epochs: dict[int, EpochState]
    debris_below_ela_m: float = 100.0
    sky_view: NDArray[np.float32] | None = None  # sky-view factor (None: from the slope)

    # ---------------------------------------------------------------- sampling
    def _index(
        self, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        t = self.grid.transform
        cols = (x - t.c) / t.a - 0.5
        rows = (y - t.f) / t.e - 0.5
        return rows, cols

    def sample(
        self, field: NDArray[Any], x: NDArray[np.float64], y: NDArray[np.float64], order: int = 1
    ) -> NDArray[np.float64]:
        """``field`` (physics grid) at the regular grid ``x`` by ``y`` (bilinear; cubic for
        ``order=3`` given spline coefficients)."""
        rows, cols = self._index(x, y)
        if order == 1:
            return _bilinear(field, rows, cols)
        rr = np.broadcast_to(rows[:, None], (rows.size, cols.size))
        cc = np.broadcast_to(cols[None, :], (rows.size, cols.size))
        return np.asarray(
            ndimage.map_coordinates(field, [rr, cc], order=order, mode="nearest", prefilter=False)
        )

    def physics_at(
        self, field: NDArray[Any], x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """``field`` (physics grid) sampled bilinearly at the regular grid ``x`` by ``y``."""
        return self.sample(field, x, y, order=1)

    # ---------------------------------------------------------------- layers
    def elevation(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Surface elevation (m): large-scale terrain plus fine relief, smoothed on ice."""
        z = self.sample(self.z_spline, x, y, order=3)
        detail = 8.0 * fbm(x, y, self.seed + 11, 640.0, 20.0)
        ice = np.clip(self.physics_at(self.union, x, y), 0.0, 1.0)
        return np.asarray(z + detail * (1.0 - 0.85 * ice))

    def glacier_cover(
        self, year: int, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Smooth glacier cover of ``year`` with irregular margins: glacier where > 0.5."""
        margin = 0.12 * fbm(x, y, self.seed + 13, 400.0, 40.0)
        return np.asarray(self.physics_at(self.epochs[year].glacier, x, y) + margin)

    def glacier(
        self, year: int, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """Glacier cover of ``year`` on the regular grid ``x`` by ``y`` (irregular margins)."""
        return np.asarray(self.glacier_cover(year, x, y) > 0.5)

    def surface(self, year: int, x: NDArray[np.float64], y: NDArray[np.float64]) -> Surface:
        """Every date-independent layer of ``year`` on the regular grid ``x`` by ``y``."""
        dx = float(x[1] - x[0]) if x.size > 1 else WORLD_RES_M
        xe = np.concatenate([[x[0] - dx], x, [x[-1] + dx]])
        ye = np.concatenate([[y[0] + dx], y, [y[-1] - dx]])
        ze = self.elevation(xe, ye).astype(np.float32)
        dzdx, dzdy = horn_gradient_padded(ze, dx, dx)
        z = ze[1:-1, 1:-1]
        slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
        ep = self.epochs[year]
        cover = self.glacier_cover(year, x, y)
        glacier = cover > 0.5
        lake_field = self.physics_at(ep.lake, x, y)
        lake = (lake_field > 0.5) & ~glacier
        wobble = 60.0 * fbm(x, y, self.seed + year, 3000.0, 30.0, hurst=0.75)
        snow = seasonal_snow_cover(z, slope, dzdx, dzdy, wobble, ep.ela_m, ep.seasonal_snow)
        snow = np.where(glacier, np.float32(0.0), snow)
        classes = surface_classes(
            z,
            slope,
            glacier,
            lake,
            ep.ela_m,
            wobble,
            self.debris_below_ela_m,
            seasonal=snow > 0.5,
        )
        return Surface(
            z,
            dzdx,
            dzdy,
            slope,
            glacier,
            classes,
            (cover - 0.5).astype(np.float32),
            (z + wobble).astype(np.float32),
            lake_field.astype(np.float32),
            snow,
        )


@dataclass(frozen=True)
class Surface:
    """The date-independent layers of one year on a block of the regular grid
    (:meth:`World.surface`)."""

    z: NDArray[np.float32]
    dzdx: NDArray[np.float32]
    dzdy: NDArray[np.float32]
    slope: NDArray[np.float32]
    glacier: NDArray[np.bool_]
    classes: NDArray[np.uint8]
    glacier_excess: NDArray[np.float32]  # glacier cover - 0.5 (> 0: glacier; edge mixing)
    zw: NDArray[np.float32]  # elevation + snow-line wobble: facies follow zw vs the ELA
    lake_field: NDArray[np.float32]  # > 0.5: lake (off the glaciers)
    seasonal_snow: NDArray[np.float32]  # seasonal snow fraction off the glaciers (> 0.5: snow)


def class_map(
    world: World, year: int, x: NDArray[np.float64], y: NDArray[np.float64]
) -> NDArray[np.uint8]:
    """The surface class code (:data:`CLASS_CODES`) of every pixel of ``year`` at the grid
    ``x`` by ``y``: the truth behind the labels, block by block. Glacier pixels are snow, firn,
    ice (clean ice) or debris (debris-covered ice); off the glaciers rock, vegetation, water
    and seasonal snow (code of snow, outside the glacier cover)."""
    return world.surface(year, x, y).classes


def physics_grid(
    world: RegionGrid, max_cells: int = MAX_PHYS_CELLS, min_res_m: float = MIN_PHYS_RES_M
) -> RegionGrid:
    """The coarse grid of a world: at most ``max_cells`` cells, a multiple of 10 m, with two
    cells of margin so interpolation never reaches its edge."""
    left, bottom, right, top = world.bounds
    area = (right - left) * (top - bottom)
    res = max(min_res_m, math.ceil(math.sqrt(area / max_cells) / WORLD_RES_M) * WORLD_RES_M)
    pad = 2 * res
    return RegionGrid.from_bounds(
        world.crs, (left - pad, bottom - pad, right + pad, top + pad), res
    )


def _flatten_lakes(z: NDArray[Any], lakes: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``z`` with every lake (connected part of ``lakes``) at one level, its mean elevation
    less 2 m: lakes are flat in a DEM."""
    labels, n = ndimage.label(lakes)
    if not n:
        return np.asarray(z, dtype=np.float64)
    level = np.asarray(ndimage.mean(z, labels, np.arange(1, n + 1))) - 2.0
    return np.asarray(np.where(labels > 0, np.concatenate([[0.0], level])[labels], z))


def build_world(
    world_grid: RegionGrid,
    seed: int,
    elas: dict[int, float],
    relief_m: tuple[float, float] = (3200.0, 6400.0),
    mass_balance_gradient: float = 0.007,
    debris_below_ela_m: float = 100.0,
    max_phys_cells: int = MAX_PHYS_CELLS,
    seasonal_snow: Mapping[int, float] | None = None,
    ice_smoothing_m: float = 300.0,
    lake_share: float = 0.07,
    wall_share: float = 0.1,
    dem_ela_m: float | None = None,
) -> World:
    """The physics of a world covering ``world_grid``, with one glacier state per ELA.

    ``seasonal_snow`` gives the amount of seasonal snow off the glaciers per year (default
    :data:`SEASONAL_SNOW`; see :class:`EpochState`). Glacier surfaces are the terrain smoothed
    over ``ice_smoothing_m`` (:func:`smooth_ice_surface`). Proglacial lakes fill the deepest
    hollows of the bed (below its 300 m mean, at least 1 m) on gentle ground of the forefields
    (covered by the Little-Ice-Age glacier, free of ice in an epoch, below its ELA):
    ``lake_share`` of the largest forefield, so later epochs with more forefield have more
    lakes (~0.3-1 % of a world whose glaciers retreated far). ``wall_share``: the steepest
    share of the terrain, which holds no ice.

    ``dem_ela_m``: the ELA of the glacier state the terrain (and so the DEM) shows, when the
    DEM was acquired in another year than the scenes. Real DEMs are one acquisition for all
    epochs (Copernicus GLO-30: 2011-2015), so ground that the ice has left since still has
    the smooth, convex ice surface. None: the largest epoch's cover (the union of the
    epochs), as if the DEM dated from the earliest epoch.
    """
    grid = physics_grid(world_grid, max_phys_cells)
    res = grid.resolution
    rng = np.random.default_rng(seed)
    h = fractal_surface(grid.shape, res, rng, beta=4.0, max_wavelength_m=20000.0)
    h = carve_valleys(h, res, cell_m=max(100.0, res))
    h = (h - h.min()) / (h.max() - h.min())
    lo, hi = relief_m
    bed = lo + (hi - lo) * h**1.4
    lia_ela = min(elas.values(), default=0.0) - 150.0  # the Little Ice Age maximum
    # Steep walls (the steepest ``wall_share`` of the terrain, smoothed over ~60 m) hold no
    # ice: peaks, aretes and headwalls stand out of the accumulation areas as rock.
    walls = np.zeros(bed.shape)
    if wall_share > 0:
        steep = np.degrees(np.arctan(np.hypot(*horn_gradient(bed, res))))
        steep = ndimage.gaussian_filter(steep, 60.0 / res)
        wall_deg = float(np.quantile(steep, 1.0 - wall_share))
        walls = np.clip((steep - wall_deg) / 8.0 + 0.5, 0.0, 1.0)
    covers = {
        year: np.minimum(glacier_fraction(bed, res, ela, mass_balance_gradient), 1.0 - walls)
        for year, ela in sorted(elas.items())
    }
    union = np.max(list(covers.values()), axis=0) if covers else np.zeros(bed.shape, np.float32)
    if dem_ela_m is not None:  # the ice surfaces the DEM shows
        dem_cover = np.minimum(
            glacier_fraction(bed, res, dem_ela_m, mass_balance_gradient), 1 - walls
        )
        union = np.maximum(union, dem_cover)
    # Glacier surfaces; the Little-Ice-Age forefields are glacially smoothed too, less so.
    lia_cover = np.minimum(glacier_fraction(bed, res, lia_ela, mass_balance_gradient), 1 - walls)
    lia = lia_cover > 0.5
    z = smooth_ice_surface(bed, np.maximum(union, 0.3 * lia_cover), res, ice_smoothing_m)
    dzdx, dzdy = horn_gradient(z, res)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    # Overdeepenings: hollows of the (glacially eroded) bed, flooded where the ice has gone;
    # one depth threshold for all epochs, so lakes stay once they have formed.
    depth = ndimage.gaussian_filter(bed, 300.0 / res) - bed
    least = np.min(list(covers.values()), axis=0) if covers else np.zeros(bed.shape)
    forefield = lia & (least < 0.3) & (z < max(elas.values(), default=0.0))
    gentle = forefield & (slope < 18.0)
    threshold = 1.0
    if gentle.any():
        q = 1.0 - lake_share * forefield.sum() / gentle.sum()
        threshold = max(threshold, float(np.quantile(depth[gentle], np.clip(q, 0.0, 1.0))))
    hollow = depth > threshold
    lakes: dict[int, NDArray[np.bool_]] = {}
    for year, ela in sorted(elas.items()):
        cover = covers[year]
        proglacial = lia & (cover < 0.3) & (slope < 18.0) & hollow & (z < ela)
        valley_floor = (slope < 2.0) & (cover < 0.3) & (z < ela - 600.0)
        lakes[year] = ndimage.binary_opening(proglacial | valley_floor, iterations=1)
    if lakes:
        z = _flatten_lakes(z, np.any(list(lakes.values()), axis=0))
    amounts = dict(seasonal_snow or {})
    epochs = {
        year: EpochState(
            year,
            ela,
            covers[year],
            ndimage.gaussian_filter(lakes[year].astype(np.float32), 0.7),
            float(amounts.get(year, SEASONAL_SNOW)),
            ndimage.gaussian_filter(np.clip(covers[year], 0.0, 1.0), 500.0 / res),
        )
        for year, ela in sorted(elas.items())
    }
    return World(
        grid=grid,
        seed=seed,
        z=z,
        z_spline=ndimage.spline_filter(z, order=3, mode="nearest"),
        union=np.asarray(union, dtype=np.float32),
        epochs=epochs,
        debris_below_ela_m=debris_below_ela_m,
        sky_view=sky_view_factor(z, res),
    )


# --------------------------------------------------------------------------- surfaces


def seasonal_snow_cover(
    z: NDArray[Any],
    slope_deg: NDArray[Any],
    dzdx: NDArray[Any],
    dzdy: NDArray[Any],
    wobble: NDArray[Any],
    ela_m: float,
    amount: float = SEASONAL_SNOW,
) -> NDArray[np.float32]:
    """Fraction (0..1) of the ground under seasonal snow (snow where > 0.5): above a snow line
    ``350 - 500 * amount`` m over the ELA, patchy (``wobble``, m), ~150 m lower on steep
    north-facing slopes, and shed by slopes steeper than ~35 degrees."""
    snowline = ela_m + 350.0 - 500.0 * amount
    north = -dzdy / np.sqrt(1.0 + dzdx * dzdx + dzdy * dzdy)  # normal's northward part
    depth = (z + 3.5 * wobble + 300.0 * north - snowline) / 100.0
    depth = depth - np.clip((slope_deg - 35.0) / 6.0, 0.0, 3.0)
    return np.clip(0.5 + depth, 0.0, 1.0).astype(np.float32)


def surface_classes(
    z: NDArray[Any],
    slope_deg: NDArray[Any],
    glacier: NDArray[np.bool_],
    lake: NDArray[np.bool_],
    ela_m: float,
    wobble: NDArray[Any],
    debris_below_ela_m: float = 100.0,
    seasonal: NDArray[np.bool_] | None = None,
) -> NDArray[np.uint8]:
    """Per-pixel surface class codes (:data:`CLASS_CODES`); ``wobble`` (m) roughens the
    snow line and vegetation limit. ``seasonal``: seasonal snow off the glaciers (default: the
    ground 350 m above the ELA, gentler than 35 degrees)."""
    zw = z + wobble
    cls = np.full(z.shape, CLASS_CODES["rock"], dtype=np.uint8)
    cls[(zw < ela_m - 1300) & (slope_deg < 30)] = CLASS_CODES["vegetation"]
    if seasonal is None:
        seasonal = (z + 3 * wobble > ela_m + 350) & (slope_deg < 35)
    cls[seasonal & ~glacier] = CLASS_CODES["snow"]
    cls[glacier & (zw >= ela_m + 150)] = CLASS_CODES["snow"]
    cls[glacier & (zw >= ela_m) & (zw < ela_m + 150)] = CLASS_CODES["firn"]
    cls[glacier & (zw < ela_m)] = CLASS_CODES["ice"]
    # Debris-covered tongues: optically rock, but smooth (DEM) and incoherent (SAR).
    cls[glacier & (zw < ela_m - debris_below_ela_m)] = CLASS_CODES["debris"]
    cls[lake & ~glacier] = CLASS_CODES["water"]
    return cls


def illumination(
    dzdx: NDArray[Any], dzdy: NDArray[Any], sun_elev_deg: float, sun_azim_deg: float
) -> NDArray[np.float32]:
    """Cosine of the solar incidence angle on the slope, clipped at 0."""
    el, az = np.radians(sun_elev_deg), np.radians(sun_azim_deg)
    sx, sy, sz = np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)
    norm = np.sqrt(1 + dzdx**2 + dzdy**2)
    cos_i = (-dzdx * sx - dzdy * sy + sz) / norm
    return np.clip(cos_i, 0.0, 1.0).astype(np.float32)


def local_incidence(
    dzdx: NDArray[Any],
    dzdy: NDArray[Any],
    look_azimuth_deg: float = SAR_LOOK_AZIMUTH_DEG,
    incidence_deg: float = SAR_INCIDENCE_DEG,
) -> NDArray[np.float64]:
    """Local incidence angle (degrees) of a sensor looking towards ``look_azimuth_deg``."""
    inc, az = np.radians(incidence_deg), np.radians(look_azimuth_deg)
    # Unit vector from the ground to the sensor.
    sx, sy, sz = -np.sin(inc) * np.sin(az), -np.sin(inc) * np.cos(az), np.cos(inc)
    norm = np.sqrt(1 + dzdx**2 + dzdy**2)
    cos_l = (-dzdx * sx - dzdy * sy + sz) / norm
    return np.degrees(np.arccos(np.clip(cos_l, -1.0, 1.0)))


def pixel_keys(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Integer (row, col) keys of the 10 m cells holding the points: noise is drawn per cell."""
    cols = np.floor(x / WORLD_RES_M + 1e-6).astype(np.int64)
    rows = np.floor(y / WORLD_RES_M + 1e-6).astype(np.int64)
    return rows[:, None], cols[None, :]


@functools.cache
def spectra(sensor: str = "sentinel-2") -> dict[str, NDArray[np.float32]]:
    """The end-members (:data:`ENDMEMBERS`) in the bands of ``sensor`` (``"sentinel-2"`` or
    ``"landsat-5"``), each of shape (6, 1, 1)."""
    if sensor not in OPTICAL_SENSORS:
        raise ValueError(f"optical sensor {sensor!r} unknown: use one of {OPTICAL_SENSORS}")
    out = {}
    for name, values in ENDMEMBERS.items():
        v = np.asarray(values, dtype=np.float32)
        if sensor == "landsat-5":
            v = v * np.asarray(TM_FACTORS.get(name, (1.0,) * 6), dtype=np.float32)
        out[name] = v[:, None, None]
    return out


def _band(values: tuple[float, ...]) -> NDArray[np.float32]:
    return np.asarray(values, dtype=np.float32)[:, None, None]


def _tri(u1: NDArray[np.float32], u2: NDArray[np.float32]) -> NDArray[np.float32]:
    """Unit-variance triangular noise from two uniforms."""
    return (u1 + u2 - np.float32(1.0)) * np.float32(math.sqrt(6.0))


def _mix(a: NDArray[Any], b: NDArray[Any], t: NDArray[Any]) -> NDArray[np.float32]:
    """``a`` to ``b`` (spectra, leading band axis) by weight ``t`` (rows, cols)."""
    return np.asarray(a + (b - a) * t[None], dtype=np.float32)


def surface_reflectance(
    world: World,
    year: int,
    s: Surface,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    sensor: str = "sentinel-2",
) -> NDArray[np.float32]:
    """Reflectance (6, rows, cols) of the surfaces ``s`` of ``year`` on flat, sunlit ground.

    Within-class variability (hashed noise keyed by position, so independent of the block):

    * rock: lithology patches (dark schist to bright granite, lichen-covered, iron-stained)
      with a texture correlated across bands, wet (darker, most in the SWIR: NDSI towards 0)
      around glacier margins, lakes and snow patches; supraglacial debris is the local rock,
      a little wetter; sparse vegetation low down is a canopy fraction over it;
    * snow and firn: impurities darken the visible (most in the blue), grain size and liquid
      water vary the NIR a little and the SWIR a lot (log-normal, independently);
    * bare ice: clean blue to dirty ice (dust, cryoconite), dirtier down the tongue;
    * lakes: turbidity (rock flour) varies between lakes;
    * mixed pixels: every class edge (glacier margin, snow line, firn line, debris, lakes,
      seasonal snow) is a linear mixture over a few pixels; the class is the larger part.
    """
    em = spectra(sensor)
    seed = world.seed
    ela = world.epochs[year].ela_m
    r, c = pixel_keys(x, y)
    u = hash_uniform4(seed, 77_001, r, c)  # static: rock, vegetation
    v = hash_uniform4(seed, 77_002, year, r, c)  # of the epoch: snow and ice
    f32 = np.float32

    # Rock: lithology dark (0) - typical (0.5) - bright (1), lichen (+) / iron (-) patches.
    lith = fbm(x, y, seed + 201, 3000.0, 300.0, hurst=0.8).astype(np.float32)
    alt = fbm(x, y, seed + 202, 2000.0, 250.0).astype(np.float32)
    tex = fbm(x, y, seed + 203, 160.0, 40.0).astype(np.float32)
    t = np.clip(f32(0.5) + f32(0.55) * lith, 0.0, 1.0)
    rock = _mix(em["rock_dark"], em["rock"], np.clip(2 * t, 0.0, 1.0))
    rock += (em["rock_bright"] - em["rock"]) * np.clip(2 * t - 1, 0.0, 1.0)[None]
    f_lichen = np.clip((alt - f32(0.3)) * f32(1.5), 0.0, 0.6)
    f_red = np.clip((-alt - f32(0.35)) * f32(1.5), 0.0, 0.6)
    rock *= (1 - f_lichen - f_red)[None]
    rock += em["rock_lichen"] * f_lichen[None] + em["rock_red"] * f_red[None]
    rock *= (1 + f32(0.12) * tex + f32(0.07) * _tri(u[0], u[1]))[None]
    debris = rock * _band((0.95, 0.95, 0.95, 0.95, 0.95, 0.94))  # finer, wetter
    # Wet ground: moraines at the glacier margin, lake shores, below snow patches.
    near_ice = np.clip(1.0 + s.glacier_excess / f32(0.35), 0.0, 1.0)
    wet = np.clip(
        f32(0.6) * near_ice
        + np.clip((s.lake_field - f32(0.15)) * f32(3.0), 0.0, 1.0)
        + f32(2.0) * s.seasonal_snow
        + np.clip(alt * f32(1.5) - f32(1.0), 0.0, 0.5),  # seeps
        0.0,
        1.0,
    )
    ground = rock * (1 - wet[None] * _band((0.3, 0.3, 0.3, 0.3, 0.45, 0.5)))
    veg = (s.zw < ela - 1300) & (s.slope < 30)
    if veg.any():
        zone = np.clip((ela - 1300 - s.zw) / f32(150.0) + f32(0.5), 0.0, 1.0)
        canopy = np.clip(f32(0.55) + f32(0.3) * alt + f32(0.1) * _tri(u[2], u[3]), 0.2, 0.85)
        ground = _mix(ground, em["vegetation"], np.where(veg, zone * canopy, 0.0))

    # Snow and firn: impurities (visible), grain size and liquid water (NIR a little, SWIR).
    imp = fbm(x, y, seed + 204 + year, 1200.0, 40.0).astype(np.float32)
    grain = fbm(x, y, seed + 205 + year, 600.0, 75.0).astype(np.float32)
    i_s = f32(1.4) * imp + f32(0.3) * _tri(v[0], v[1])  # ~ unit variance
    g_s = f32(1.7) * grain + f32(0.4) * _tri(v[2], v[3])
    dark = _band((1.0, 0.92, 0.8, 0.55, 0.3, 0.3)) * i_s[None]  # impurity absorption
    # Larger or wetter grains absorb more; a tail of fine-grained (fresh, wind-packed) snow.
    swir = np.exp(f32(-0.55) * g_s) * (1 + f32(1.6) * np.clip(-g_s - f32(0.9), 0.0, 1.5))
    nir = 1 - f32(0.04) * g_s
    snow = em["snow"] * (1 - f32(0.07) * dark)
    firn = em["firn"] * (1 - f32(0.12) * dark)
    for a in (snow, firn):
        a[3] *= nir
        a[4:] *= swir[None]
    # Seasonal snow patches: older, dirtier.
    ground = _mix(ground, snow * _band((0.9, 0.9, 0.9, 0.92, 1.2, 1.2)), s.seasonal_snow)
    # Lakes: turbid to clearer.
    turb = np.clip(f32(1.0) + f32(0.5) * alt, 0.3, 1.4)
    water = _mix(em["water_clear"], em["water"], turb)
    f_lake = np.clip((s.lake_field - f32(0.5)) / f32(0.3) + f32(0.5), 0.0, 1.0)
    ground = _mix(ground, water, f_lake)

    # Bare ice: clean blue to dirty, dirtier down the tongue.
    below = np.clip((ela - s.zw) / f32(500.0), 0.0, 1.0)
    t_ice = np.clip(f32(0.5) + f32(0.38) * i_s + f32(0.25) * below, 0.0, 1.0)
    ice = _mix(em["ice_clean"], em["ice_dirty"], t_ice)
    ice[4:] *= np.exp(f32(-0.3) * g_s)[None]
    # Facies by elevation against the ELA, mixed over +-12 m of zw (a few pixels).
    a_firn = np.clip((s.zw - ela) / f32(25.0) + f32(0.5), 0.0, 1.0)
    a_snow = np.clip((s.zw - ela - 150.0) / f32(25.0) + f32(0.5), 0.0, 1.0)
    glac = _mix(ice, _mix(firn, snow, a_snow), a_firn)
    a_debris = (ela - world.debris_below_ela_m - s.zw) / f32(80.0) + f32(0.5)
    glac = _mix(glac, debris, np.clip(a_debris, 0.0, 1.0))
    a_glac = np.clip(s.glacier_excess / f32(0.1) + f32(0.5), 0.0, 1.0)
    return _mix(ground, glac, a_glac)


def irradiance(
    world: World,
    year: int,
    s: Surface,
    sc: Scene,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    shade: NDArray[np.bool_],
) -> NDArray[np.float32]:
    """Light on the ground (6, rows, cols), 1 on flat open sunlit ground: direct sun on the
    slope (none in ``shade``), plus sky light (:data:`DIFFUSE_SHARE`) seen by the sky-view
    factor, plus light reflected by the slopes around (the rest of the view), as bright as
    snow where the surroundings are snow and ice; those slopes face the pixel and are mostly
    sunlit (the opposite valley side), so they are lit 1.3 times as much as flat ground."""
    cos_i = illumination(s.dzdx, s.dzdy, sc.sun_elev_deg, sc.sun_azim_deg)
    direct = np.where(shade, np.float32(0.0), cos_i) / np.float32(
        math.sin(math.radians(sc.sun_elev_deg))
    )
    svf = (0.5 * (1.0 + np.cos(np.radians(s.slope)))).astype(np.float32)
    if world.sky_view is not None:
        svf = np.minimum(svf, world.physics_at(world.sky_view, x, y).astype(np.float32))
    ep = world.epochs[year]
    bright = world.physics_at(ep.glacier if ep.bright is None else ep.bright, x, y)
    em = spectra(sc.sensor)
    around = _mix(em["rock"], em["snow"], np.clip(bright, 0.0, 1.0).astype(np.float32))
    d = _band(DIFFUSE_SHARE)
    return np.asarray(
        (1 - d) * direct[None] + d * svf[None] + around * (1.3 * (1 - svf))[None],
        dtype=np.float32,
    )


def reflectance(
    classes: NDArray[np.uint8],
    cos_i: NDArray[Any],
    sun_elev_deg: float,
    noise: NDArray[Any],
    shade: NDArray[np.bool_] | None = None,
    sensor: str = "sentinel-2",
) -> NDArray[np.float32]:
    """Reflectance (6, rows, cols) of the class end-members alone (no within-class variation)
    under direct and sky light (:data:`DIFFUSE_SHARE`), plus ``noise`` (6, rows, cols).
    ``shade`` (cast or cloud shadow) leaves only the sky light."""
    em = spectra(sensor)
    table = np.zeros((len(CLASS_CODES), 6), dtype=np.float32)
    for name, code in CLASS_CODES.items():
        table[code] = em[name][:, 0, 0]
    refl = table[classes].transpose(2, 0, 1)
    direct = cos_i if shade is None else np.where(shade, 0.0, cos_i)
    d = _band(DIFFUSE_SHARE)
    light = d + (1 - d) * (direct / np.sin(np.radians(sun_elev_deg)))[None]
    return np.clip(refl * light + noise, 0.0, 1.5).astype(np.float32)


def with_clouds(refl: NDArray[np.float32], cloud: NDArray[Any]) -> NDArray[np.float32]:
    """Blend the cloud end-member over the surface by cloud optical-thickness proxy."""
    cl = cloud[None]
    cloud_refl = np.asarray(ENDMEMBERS["cloud"], np.float32)[:, None, None]
    return np.asarray(refl * (1 - cl) + cloud_refl * cl, dtype=np.float32)


@dataclass(frozen=True)
class Scene:
    """The date-dependent coarse fields of one optical acquisition."""

    key: int
    sun_elev_deg: float
    sun_azim_deg: float
    cast: NDArray[np.float32]
    cloud: NDArray[np.float32]
    cloud_shadow: NDArray[np.float32]
    sensor: str = "sentinel-2"  # band set of the end-members (see :func:`spectra`)


def scene(
    world: World,
    key: int,
    sun_elev_deg: float,
    sun_azim_deg: float,
    cloud_fraction: float,
    sensor: str = "sentinel-2",
) -> Scene:
    """Cast shadows, clouds and cloud shadows of one acquisition on the physics grid."""
    spectra(sensor)  # fail early on an unknown sensor
    g = world.grid
    rng = np.random.default_rng([world.seed, key])
    cast = cast_shadow(world.z, g.resolution, sun_elev_deg, sun_azim_deg, step_px=1)
    cloud = cloud_field(g.shape, g.resolution, cloud_fraction, rng)
    cshadow = cloud_shadow(cloud, g.resolution, sun_elev_deg, sun_azim_deg) & (cloud <= 0.2)
    return Scene(
        key,
        sun_elev_deg,
        sun_azim_deg,
        cast.astype(np.float32),
        cloud,
        cshadow.astype(np.float32),
        sensor,
    )


@dataclass(frozen=True)
class OpticalBlock:
    """One rendered block of an optical acquisition: reflectance with clouds (6 bands),
    surface classes, cloud fraction and cloud shadow."""

    refl: NDArray[np.float32]  # (6, rows, cols), with clouds
    classes: NDArray[np.uint8]
    cloud: NDArray[np.float32]
    cloud_shadow: NDArray[np.bool_]


def render_optical(
    world: World, year: int, sc: Scene, x: NDArray[np.float64], y: NDArray[np.float64]
) -> OpticalBlock:
    """Surface reflectance with clouds of one acquisition at the grid ``x`` by ``y``:
    :func:`surface_reflectance` under :func:`irradiance`, plus sensor noise."""
    s = world.surface(year, x, y)
    cloud = np.clip(world.physics_at(sc.cloud, x, y), 0.0, 1.0)
    cshadow = world.physics_at(sc.cloud_shadow, x, y) > 0.5
    shade = (world.physics_at(sc.cast, x, y) > 0.5) | cshadow
    refl = surface_reflectance(world, year, s, x, y, sc.sensor)
    refl *= irradiance(world, year, s, sc, x, y, shade)
    r, c = pixel_keys(x, y)
    u = np.concatenate(
        [hash_uniform4(world.seed, sc.key, 71, r, c), hash_uniform4(world.seed, sc.key, 72, r, c)]
    )
    refl += (u[:6] - np.float32(0.5)) * np.float32(math.sqrt(12.0)) * _band(SENSOR_NOISE)
    refl = np.clip(refl, 0.0, 1.5)
    return OpticalBlock(with_clouds(refl, cloud), s.classes, cloud.astype(np.float32), cshadow)


LS_LAYOVER, LS_SHADOW = 1, 2
"""Values of the layover/shadow map (0: neither)."""


def sar_geometry(world: World) -> NDArray[np.float32]:
    """Range-extended radar shadow on the physics grid (1 = hidden from the sensor)."""
    return radar_shadow(world.z, world.grid.resolution).astype(np.float32)


def _sar_surface(
    world: World, year: int, shadow_field: NDArray[np.float32], x: NDArray[Any], y: NDArray[Any]
) -> tuple[Surface, NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    s = world.surface(year, x, y)
    theta = local_incidence(s.dzdx, s.dzdy)
    layover, self_shadow = _layover_shadow_from_gradient(
        s.dzdx, s.dzdy, SAR_LOOK_AZIMUTH_DEG, SAR_INCIDENCE_DEG
    )
    shadow = self_shadow | (world.physics_at(shadow_field, x, y) > 0.5)
    return s, theta, layover, shadow


def render_backscatter(
    world: World,
    year: int,
    shadow_field: NDArray[np.float32],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    key: int,
    pols: tuple[str, ...],
) -> tuple[dict[str, NDArray[np.float32]], NDArray[np.uint8]]:
    """Speckled backscatter (linear gamma0 power) per polarisation of acquisition ``key`` at
    the grid ``x`` by ``y``, and the layover/shadow map (:data:`LS_LAYOVER`, :data:`LS_SHADOW`).
    """
    s, theta, layover, shadow = _sar_surface(world, year, shadow_field, x, y)
    ls = np.where(layover, LS_LAYOVER, np.where(shadow, LS_SHADOW, 0)).astype(np.uint8)
    r, c = pixel_keys(x, y)
    # Backscatter falls with local incidence (cosine law); layover sums several slopes into
    # one bright pixel; shadow returns only the noise floor (-25 dB).
    shape_db = 10 * np.log10(
        np.clip(np.cos(np.radians(theta)), 0.05, 1.0) ** 2 / np.cos(np.radians(35)) ** 2
    )
    shape_db = np.where(layover, shape_db + 5.0, shape_db)
    out = {}
    for pol in pols:
        k = 0 if pol in ("VV", "HH") else 1
        base_db = np.choose(s.classes, [SAR_DB[n][k] for n in CLASS_CODES])
        power = np.where(shadow, 10 ** (-25 / 10), 10 ** ((base_db + shape_db) / 10))
        speckle = hash_gamma(world.seed, int(SAR_LOOKS), key, k, r, c)
        out[pol] = (power * speckle).astype(np.float32)
    return out, ls


def render_coherence(
    world: World,
    year: int,
    shadow_field: NDArray[np.float32],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    key: int,
) -> NDArray[np.float32]:
    """InSAR coherence of pair ``key`` at the grid ``x`` by ``y``."""
    s, _, layover, shadow = _sar_surface(world, year, shadow_field, x, y)
    coh = np.choose(s.classes, [SAR_COHERENCE[n] for n in CLASS_CODES])
    coh = np.where(layover, 0.35, np.where(shadow, 0.1, coh))
    # Spatially coherent decorrelation (wind, moisture, snow) plus estimator noise.
    r, c = pixel_keys(x, y)
    patchy = 0.2 * fbm(x, y, world.seed * 7 + key, 3000.0, 60.0)
    coh = coh + patchy + 0.1 * hash_normal(world.seed, key, 9, r, c)
    return np.clip(coh, 0.0, 1.0).astype(np.float32)
