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
  to the square root of the flux (wider valleys carry more ice);
* proglacial lakes: in the forefield that the Little-Ice-Age glacier (ELA 150 m below the
  lowest epoch's) covered and the epoch's glacier has left, on flat ground in hollows of the
  valley floor; so later epochs have more lakes. Flat low valley floors hold lakes too;
* surfaces: snow, firn, ice, debris-covered tongues (``debris_below_ela_m`` below the ELA:
  optically like rock, smooth in the DEM and incoherent in InSAR), seasonal snow patches,
  vegetation low down, water, rock;
* optical reflectance from end-member spectra modulated by illumination (sun
  elevation/azimuth, cosine of incidence), terrain cast shadows, clouds and their shadows;
* SAR backscatter from the local incidence angle per surface class with gamma speckle,
  layover (bright, incoherent) from the slope facing the sensor and radar shadow where the
  terrain towards the sensor hides the ground (range-extended, like a cast shadow), and
  InSAR coherence that is low on moving ice and water and high on stable rock.

Bounded memory at any world size: everything non-local (terrain, valley incision, the
balance-flux model, lakes, cast shadows, clouds, radar shadow) is computed on a *physics
grid* of at most ``max_phys_cells`` cells (20 m for a 20 km world, ~100 m for a full
Sentinel-2 tile). Any output grid is then rendered block by block: the physics fields are
interpolated to the block's pixel centres and per-pixel detail and noise come from an integer
hash of the pixel's coordinates. A block therefore does not depend on the block layout and
peak memory depends on the block size, not the world size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from glaciermap.grid import RegionGrid
from glaciermap.terrain import horn_gradient, horn_gradient_padded

WORLD_RES_M = 10.0
"""Spacing of the rendered world (that of Sentinel-2's finest bands)."""

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

MAX_PHYS_CELLS = 1_500_000
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


def hash_uniform(seed: int, *keys: NDArray[Any] | int) -> NDArray[np.float64]:
    """Uniform (0, 1) numbers from integer keys (broadcast together): the same keys give the
    same numbers, whatever else is computed alongside."""
    h = np.asarray(np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    for k in keys:
        kk = np.asarray(k, dtype=np.int64).view(np.uint64)
        with np.errstate(over="ignore"):
            h = _splitmix((h ^ kk) + _GOLDEN)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


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
    top = lattice[rj][:, ci] * (1 - su) + lattice[rj][:, ci + 1] * su
    bot = lattice[rj + 1][:, ci] * (1 - su) + lattice[rj + 1][:, ci + 1] * su
    return np.asarray(top * (1 - sv)[:, None] + bot * sv[:, None])


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


@dataclass(frozen=True)
class EpochState:
    year: int
    ela_m: float
    glacier: NDArray[np.float32]  # smooth cover on the physics grid
    lake: NDArray[np.float32]


@dataclass
class World:
    """Physics fields of one world on its coarse grid; renders any 10 m grid on demand."""

    grid: RegionGrid  # the physics grid (covers the rendered world with a margin)
    seed: int
    z: NDArray[np.float64]  # large-scale terrain (m)
    z_spline: NDArray[np.float64]  # its cubic spline coefficients
    union: NDArray[np.float32]  # glacier cover of any epoch (smooth)
    epochs: dict[int, EpochState]
    debris_below_ela_m: float = 100.0

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
        rr = np.broadcast_to(rows[:, None], (rows.size, cols.size))
        cc = np.broadcast_to(cols[None, :], (rows.size, cols.size))
        return np.asarray(
            ndimage.map_coordinates(field, [rr, cc], order=order, mode="nearest", prefilter=False)
        )

    def physics_at(
        self, field: NDArray[Any], x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        return self.sample(field, x, y, order=1)

    # ---------------------------------------------------------------- layers
    def elevation(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Surface elevation (m): large-scale terrain plus fine relief, smoothed on ice."""
        z = self.sample(self.z_spline, x, y, order=3)
        detail = 8.0 * fbm(x, y, self.seed + 11, 640.0, 20.0)
        ice = np.clip(self.physics_at(self.union, x, y), 0.0, 1.0)
        return np.asarray(z + detail * (1.0 - 0.85 * ice))

    def glacier(
        self, year: int, x: NDArray[np.float64], y: NDArray[np.float64]
    ) -> NDArray[np.bool_]:
        """Glacier cover of ``year`` on the regular grid ``x`` by ``y`` (irregular margins)."""
        margin = 0.12 * fbm(x, y, self.seed + 13, 400.0, 40.0)
        return np.asarray(self.physics_at(self.epochs[year].glacier, x, y) + margin > 0.5)

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
        glacier = self.glacier(year, x, y)
        lake = (self.physics_at(ep.lake, x, y) > 0.5) & ~glacier
        wobble = 60.0 * fbm(x, y, self.seed + year, 3000.0, 30.0, hurst=0.75)
        classes = surface_classes(
            z, slope, glacier, lake, ep.ela_m, wobble, self.debris_below_ela_m
        )
        return Surface(z, dzdx, dzdy, slope, glacier, classes)


@dataclass(frozen=True)
class Surface:
    z: NDArray[np.float32]
    dzdx: NDArray[np.float32]
    dzdy: NDArray[np.float32]
    slope: NDArray[np.float32]
    glacier: NDArray[np.bool_]
    classes: NDArray[np.uint8]


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


def build_world(
    world_grid: RegionGrid,
    seed: int,
    elas: dict[int, float],
    relief_m: tuple[float, float] = (3200.0, 6400.0),
    mass_balance_gradient: float = 0.007,
    debris_below_ela_m: float = 100.0,
    max_phys_cells: int = MAX_PHYS_CELLS,
) -> World:
    """The physics of a world covering ``world_grid``, with one glacier state per ELA."""
    grid = physics_grid(world_grid, max_phys_cells)
    res = grid.resolution
    rng = np.random.default_rng(seed)
    h = fractal_surface(grid.shape, res, rng, beta=4.0, max_wavelength_m=20000.0)
    h = carve_valleys(h, res, cell_m=max(100.0, res))
    h = (h - h.min()) / (h.max() - h.min())
    lo, hi = relief_m
    z = lo + (hi - lo) * h**1.4
    dzdx, dzdy = horn_gradient(z, res)
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    hollow = z - ndimage.gaussian_filter(z, 400.0 / res) < -2.0
    epochs: dict[int, EpochState] = {}
    lia_ela = min(elas.values(), default=0.0) - 150.0  # the Little Ice Age maximum
    lia = glacier_fraction(z, res, lia_ela, mass_balance_gradient) > 0.5
    for year, ela in sorted(elas.items()):
        cover = glacier_fraction(z, res, ela, mass_balance_gradient)
        proglacial = lia & (cover < 0.3) & (slope < 10.0) & hollow
        valley_floor = (slope < 2.0) & (cover < 0.3) & (z < ela - 600.0)
        lake = ndimage.binary_opening(proglacial | valley_floor, iterations=1)
        epochs[year] = EpochState(
            year, ela, cover, ndimage.gaussian_filter(lake.astype(np.float32), 0.7)
        )
    union = np.max([ep.glacier for ep in epochs.values()], axis=0) if epochs else np.zeros(z.shape)
    return World(
        grid=grid,
        seed=seed,
        z=z,
        z_spline=ndimage.spline_filter(z, order=3, mode="nearest"),
        union=np.asarray(union, dtype=np.float32),
        epochs=epochs,
        debris_below_ela_m=debris_below_ela_m,
    )


# --------------------------------------------------------------------------- surfaces


def surface_classes(
    z: NDArray[Any],
    slope_deg: NDArray[Any],
    glacier: NDArray[np.bool_],
    lake: NDArray[np.bool_],
    ela_m: float,
    wobble: NDArray[Any],
    debris_below_ela_m: float = 100.0,
) -> NDArray[np.uint8]:
    """Per-pixel surface class codes (:data:`CLASS_CODES`); ``wobble`` (m) roughens the
    snow line and vegetation limit."""
    zw = z + wobble
    cls = np.full(z.shape, CLASS_CODES["rock"], dtype=np.uint8)
    cls[(zw < ela_m - 1300) & (slope_deg < 30)] = CLASS_CODES["vegetation"]
    seasonal = (z + 3 * wobble > ela_m + 350) & (slope_deg < 35) & ~glacier
    cls[seasonal] = CLASS_CODES["snow"]
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


def reflectance(
    classes: NDArray[np.uint8],
    cos_i: NDArray[Any],
    sun_elev_deg: float,
    noise: NDArray[Any],
    shade: NDArray[np.bool_] | None = None,
) -> NDArray[np.float32]:
    """Surface reflectance (6, rows, cols) from end-members, illumination and ``noise``
    (6, rows, cols). ``shade`` (cast or cloud shadow) leaves only the diffuse light."""
    table = np.zeros((len(CLASS_CODES), 6), dtype=np.float32)
    for name, code in CLASS_CODES.items():
        table[code] = ENDMEMBERS[name]
    refl = table[classes].transpose(2, 0, 1)
    # Lambertian terrain effect with a diffuse (sky) part; 1 on flat ground.
    direct = cos_i if shade is None else np.where(shade, 0.0, cos_i)
    light = 0.25 + 0.75 * direct / np.sin(np.radians(sun_elev_deg))
    return np.clip(refl * light[None] + noise, 0.0, 1.5).astype(np.float32)


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


def scene(
    world: World, key: int, sun_elev_deg: float, sun_azim_deg: float, cloud_fraction: float
) -> Scene:
    """Cast shadows, clouds and cloud shadows of one acquisition on the physics grid."""
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
    )


@dataclass(frozen=True)
class OpticalBlock:
    refl: NDArray[np.float32]  # (6, rows, cols), with clouds
    classes: NDArray[np.uint8]
    cloud: NDArray[np.float32]
    cloud_shadow: NDArray[np.bool_]


def render_optical(
    world: World, year: int, sc: Scene, x: NDArray[np.float64], y: NDArray[np.float64]
) -> OpticalBlock:
    """Top-of-canopy reflectance with clouds of one acquisition at the grid ``x`` by ``y``."""
    s = world.surface(year, x, y)
    cos_i = illumination(s.dzdx, s.dzdy, sc.sun_elev_deg, sc.sun_azim_deg)
    cloud = np.clip(world.physics_at(sc.cloud, x, y), 0.0, 1.0)
    cshadow = world.physics_at(sc.cloud_shadow, x, y) > 0.5
    shade = (world.physics_at(sc.cast, x, y) > 0.5) | cshadow
    r, c = pixel_keys(x, y)
    noise = np.stack([0.008 * hash_normal(world.seed, sc.key, b, r, c) for b in range(6)])
    refl = reflectance(s.classes, cos_i, sc.sun_elev_deg, noise, shade)
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
