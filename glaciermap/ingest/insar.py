"""InSAR coherence from co-registered single-look complex (SLC) pairs.

Boxcar (moving-window) estimator over ``window = (rows, cols)`` looks:

    gamma = |sum(s1 * conj(s2))| / sqrt(sum(|s1|^2) * sum(|s2|^2))

It is biased upwards for few looks (about ``sqrt(pi / (4 N))`` for incoherent signals with
``N = rows * cols`` looks), which is why windows of 5 x 20 (range x azimuth) or larger are common
for Sentinel-1 IW. Pixels whose window contains nodata (NaN) are NaN.
"""

from __future__ import annotations

import logging

import numpy as np
import rasterio
from numpy.typing import NDArray
from scipy import ndimage

from glaciermap.core.errors import InputDataError
from glaciermap.core.io import PathLike, atomic_path, open_raster

log = logging.getLogger(__name__)


def boxcar_coherence(
    s1: NDArray[np.complexfloating], s2: NDArray[np.complexfloating], window: tuple[int, int]
) -> NDArray[np.float32]:
    """Coherence magnitude (0..1) of two co-registered complex images."""
    if s1.shape != s2.shape:
        raise InputDataError(f"SLC shapes differ: {s1.shape} vs {s2.shape}; co-register them first")
    bad = ~(np.isfinite(s1) & np.isfinite(s2))
    a = np.where(bad, 0, s1).astype(np.complex128)
    b = np.where(bad, 0, s2).astype(np.complex128)
    cross = a * np.conj(b)

    def mean(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(ndimage.uniform_filter(x, size=window, mode="nearest"))

    num = np.hypot(mean(cross.real), mean(cross.imag))
    den = np.sqrt(mean(np.abs(a) ** 2) * mean(np.abs(b) ** 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        coh = np.where(den > 0, num / den, np.nan)
    touched = mean(bad.astype(np.float64)) > 0
    coh[touched] = np.nan
    return np.clip(coh, 0.0, 1.0).astype(np.float32)


def coherence_from_slc_files(
    reference: PathLike, secondary: PathLike, dest: PathLike, window: tuple[int, int] = (5, 20)
) -> None:
    """Coherence of two complex GeoTIFFs (same grid) written as a float32 GeoTIFF (0..1)."""
    with open_raster(reference) as r, open_raster(secondary) as s:
        if (r.shape, r.transform, r.crs) != (s.shape, s.transform, s.crs):
            raise InputDataError(
                f"{secondary}: grid differs from {reference}; SLC pairs must be co-registered"
            )
        if not np.issubdtype(np.dtype(r.dtypes[0]), np.complexfloating):
            raise InputDataError(f"{reference}: dtype {r.dtypes[0]} is not complex; pass SLC data")
        coh = boxcar_coherence(r.read(1), s.read(1), window)
        profile = r.profile.copy()
    profile.update(dtype="float32", count=1, nodata=np.nan, driver="GTiff", compress="deflate")
    with atomic_path(dest) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(coh, 1)
        dst.set_band_description(1, "coherence")
    log.info("coherence %s: mean %.3f", dest, float(np.nanmean(coh)))
