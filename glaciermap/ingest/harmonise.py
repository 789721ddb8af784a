"""Cross-sensor harmonisation of surface reflectance: Landsat 4-7 TM/ETM+ onto Landsat 8-9 OLI.

The pipeline reads every sensor into the same six common band names (blue, green, red, nir,
swir1, swir2), so one model can take a Landsat 5 epoch and a Sentinel-2 epoch. The bands
still differ slightly in spectral response and calibration. ``optical: harmonise: oli``
adjusts the TM/ETM+ surface reflectance with the published between-sensor functions of Roy
et al. (2016, Remote Sensing of Environment 185, 57-70, doi:10.1016/j.rse.2015.12.024),
``OLI = intercept + slope * ETM+``. These are the ordinary-least-squares surface-reflectance
coefficients, and they are used for TM too, as in common Landsat time-series practice.

Left as they are:

* OLI and Sentinel-2 MSI. The HLS project (Claverie et al. 2018, Remote Sensing of
  Environment 219, 145-161) finds MSI-to-OLI adjustments within a few percent, smaller than
  the spread inside one glacier class.
* Level-1 top-of-atmosphere products (``*-l1``). The functions above are for surface
  reflectance.
* A user's sidecar-described imagery: its sensor is unknown.

**Why ``none`` is the default.** Roy et al. fitted their functions on CONUS land pixels,
whose reflectance is mostly below 0.5. Glacier scenes are mostly snow and ice at 0.5-1.0, far
outside that range. Extrapolated there, slopes of 0.85-0.91 lower sunlit snow by up to 15 %
in the visible. The two sensors agree within about 3 % on bright calibration sites (Mishra et
al. 2014, Remote Sensing 6, 12619-12638), so the adjustment would add more error than it
removes. The learned models see per-layer normalised features and are trained with a
radiometric gain jitter (``training: cnn: jitter_gain``, 10 %), which covers the remaining
differences. Turn it on for scenes dominated by vegetation and soil, or to compare with
harmonised products.
"""

from __future__ import annotations

from glaciermap.core.errors import ConfigError

HARMONISE_CHOICES = ("none", "oli")
"""Values of ``optical: harmonise``."""

# Roy et al. (2016), ETM+ -> OLI surface reflectance, OLS: band -> (slope, intercept).
ETM_TO_OLI: dict[str, tuple[float, float]] = {
    "blue": (0.8474, 0.0003),
    "green": (0.8483, 0.0088),
    "red": (0.9047, 0.0061),
    "nir": (0.8462, 0.0412),
    "swir1": (0.8937, 0.0254),
    "swir2": (0.9071, 0.0172),
}

_TM_ETM = ("landsat-4", "landsat-5", "landsat-7")


def adjustment(sensor: str, target: str) -> dict[str, tuple[float, float]]:
    """Per band ``(slope, intercept)`` that bring surface reflectance of ``sensor`` (an
    :class:`~glaciermap.ingest.optical.OpticalScene` sensor such as ``landsat-5``) onto
    ``target`` (``none`` or ``oli``). Returns an empty dict when nothing is adjusted (the
    target is ``none``, the sensor is OLI, MSI, a Level-1 product or a sidecar scene)."""
    if target not in HARMONISE_CHOICES:
        raise ConfigError(
            f"optical: harmonise: {target!r} unknown; use one of {list(HARMONISE_CHOICES)}"
        )
    if target == "oli" and sensor in _TM_ETM:
        return dict(ETM_TO_OLI)
    return {}
