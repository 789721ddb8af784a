"""Input files recognised by name alone: SAR backscatter and coherence files, Copernicus DEM
tiles. Pure Python (no raster I/O), so the input catalogue lists inputs while the workflow is
parsed without importing raster processing.

Backscatter files are single-polarisation rasters named ``..._{VV|VH|HH|HV}.tif``; coherence
files ``..._corr.tif`` or containing ``coh``; dates are the ``YYYYMMDD`` in the name.
Copernicus DEM tiles are ``Copernicus_DSM_COG_{10,30}_{N|S}dd_00_{E|W}ddd_00_DEM.tif``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from glaciermap.core.io import PathLike

_POL_RE = re.compile(r"_(VV|VH|HH|HV)\.tiff?$", re.IGNORECASE)
_DATE_RE = re.compile(r"(?<!\d)((?:19|20)\d{6})(?!\d)")
COPOL, CROSSPOL = ("VV", "HH"), ("VH", "HV")
LAYER_COPOL_DB, LAYER_CROSSPOL_DB = "sar_copol_db", "sar_crosspol_db"
LAYER_COHERENCE = "sar_copol_coherence"


@dataclass(frozen=True)
class SarFile:
    """A SAR input file: its kind, polarisation and dates (from its name)."""

    path: Path
    kind: str  # "backscatter" or "coherence"
    pol: str  # VV/VH/HH/HV for backscatter, "copol" for coherence
    dates: tuple[str, ...]


def classify_sar_files(files: Sequence[PathLike]) -> list[SarFile]:
    """Recognise backscatter and coherence files by name; others are ignored."""
    out = []
    for f in sorted(map(Path, files)):
        name = f.name
        dates = tuple(_DATE_RE.findall(name))
        if name.lower().endswith(("_corr.tif", "_corr.tiff")) or "coh" in name.lower():
            out.append(SarFile(f, "coherence", "copol", dates))
            continue
        m = _POL_RE.search(name)
        if m:
            out.append(SarFile(f, "backscatter", m.group(1).upper(), dates))
    return out


def backscatter_layers(files: Sequence[SarFile]) -> list[tuple[str, list[Path]]]:
    """(layer name, files) per polarisation the backscatter ``files`` have: co-pol
    (VV/HH), then cross-pol (VH/HV); none without co-pol files (the caller says so)."""
    sar = [s for s in files if s.kind == "backscatter"]
    out = []
    for pols, layer in ((COPOL, LAYER_COPOL_DB), (CROSSPOL, LAYER_CROSSPOL_DB)):
        sel = [s.path for s in sar if s.pol in pols]
        if sel:
            out.append((layer, sel))
    return out if out and out[0][0] == LAYER_COPOL_DB else []


def select_pairs(
    files: Sequence[SarFile],
    max_baseline_days: int | None = None,
    months: Sequence[int] | None = None,
) -> list[SarFile]:
    """Coherence pairs whose temporal baseline is at most ``max_baseline_days`` and whose
    first acquisition falls in ``months`` (1-12; e.g. late summer, when snow is gone)."""
    out = []
    for f in files:
        if len(f.dates) < 2:
            out.append(f)  # dates unknown: keep, nothing to select on
            continue
        d1, d2 = (dt.date(int(d[:4]), int(d[4:6]), int(d[6:])) for d in f.dates[:2])
        if max_baseline_days is not None and abs((d2 - d1).days) > max_baseline_days:
            continue
        if months and d1.month not in months:
            continue
        out.append(f)
    return out


_COP_RE = re.compile(
    r"Copernicus_DSM_(?:COG_)?(?P<res>\d{2})_(?P<ns>[NS])(?P<lat>\d{2})_00_(?P<ew>[EW])"
    r"(?P<lon>\d{3})_00_DEM\.tif$",
    re.IGNORECASE,
)


def copernicus_tile_bounds(name: str) -> tuple[float, float, float, float] | None:
    """(west, south, east, north) in degrees of a Copernicus DEM tile name, else None."""
    m = _COP_RE.search(name)
    if not m:
        return None
    lat = int(m["lat"]) * (1 if m["ns"].upper() == "N" else -1)
    lon = int(m["lon"]) * (1 if m["ew"].upper() == "E" else -1)
    return (float(lon), float(lat), float(lon + 1), float(lat + 1))


def select_dem_tiles(
    files: Sequence[PathLike], bounds_lonlat: tuple[float, float, float, float]
) -> list[Path]:
    """DEM files whose Copernicus tile name intersects ``bounds_lonlat``; files not named like
    Copernicus tiles are all kept (their footprint is checked when mosaicking)."""
    w, s, e, n = bounds_lonlat
    keep = []
    for f in map(Path, files):
        b = copernicus_tile_bounds(f.name)
        if b is None or (b[0] < e and b[2] > w and b[1] < n and b[3] > s):
            keep.append(f)
    return sorted(keep)


def layer_unit(name: str) -> str:
    """The unit of a layer by its name (band metadata): elevation m, slope degree, SAR
    backscatter dB; reflectance, ratios, coherence and counts are unitless."""
    if name == "elevation":
        return "m"
    if name == "slope":
        return "degree"
    if name.endswith("_db"):
        return "dB"
    return "1"
