"""SAR layers on the region grid: temporal backscatter in dB and stacked InSAR coherence.

Backscatter files are single-polarisation rasters named ``..._{VV|VH|HH|HV}.tif`` (as ASF
HyP3 RTC products are), holding linear power (gamma0/sigma0) unless told otherwise; dates come
from the first ``YYYYMMDD`` in the name. Coherence files are named ``..._corr.tif`` (HyP3
InSAR) or contain ``coh``; values 0..1. Co-pol is VV or HH, cross-pol VH or HV.
Averaging is done in linear power, then converted: ``dB = 10 log10(power)``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from glaciermap.errors import InputDataError, MissingInputError
from glaciermap.grid import RegionGrid, write_raster
from glaciermap.io import PathLike
from glaciermap.reproject import CONTINUOUS, reproject_to_grid

log = logging.getLogger(__name__)

_POL_RE = re.compile(r"_(VV|VH|HH|HV)\.tiff?$", re.IGNORECASE)
_DATE_RE = re.compile(r"(?<!\d)((?:19|20)\d{6})(?!\d)")
COPOL, CROSSPOL = ("VV", "HH"), ("VH", "HV")
LAYER_COPOL_DB, LAYER_CROSSPOL_DB = "sar_copol_db", "sar_crosspol_db"
LAYER_COHERENCE = "sar_copol_coherence"


@dataclass(frozen=True)
class SarFile:
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


def to_db(power: NDArray[np.floating], floor: float = 1e-6) -> NDArray[np.float32]:
    """Linear power to decibels; values below ``floor`` are clipped (no -inf)."""
    with np.errstate(invalid="ignore"):
        return (10.0 * np.log10(np.maximum(power, floor))).astype(np.float32)


def _to_power(a: NDArray[np.float32], scale: str) -> NDArray[np.float32]:
    if scale == "amplitude":
        return a**2
    if scale == "db":
        return np.asarray(10 ** (a / 10), dtype=np.float32)
    return a


def temporal_reduce(
    paths: Sequence[Path],
    grid: RegionGrid,
    threads: int = 1,
    scale: str = "power",
    reducer: str = "mean",
) -> NDArray[np.float32]:
    """Per-pixel ``mean``, ``median`` or percentile (``p10`` ... ``p90``) over files on the
    grid, in the power domain; an error if none overlaps the grid.

    The mean streams (one layer in memory); median and percentiles stack all dates.
    """
    if reducer != "mean" and reducer != "median" and not re.fullmatch(r"p\d{1,2}", reducer):
        raise InputDataError(f"SAR reducer {reducer!r} unknown: use mean, median or pNN")
    acc = np.zeros(grid.shape, dtype=np.float64)
    n = np.zeros(grid.shape, dtype=np.int32)
    layers = []
    for p in paths:
        a = _to_power(reproject_to_grid(p, grid, CONTINUOUS, bands=[1], threads=threads)[0], scale)
        ok = np.isfinite(a)
        n[ok] += 1
        if reducer == "mean":
            acc[ok] += a[ok]
        else:
            layers.append(a)
    if not n.any():
        raise InputDataError(
            f"SAR files {[p.name for p in paths]} do not overlap the region grid {grid.bounds} "
            f"({grid.crs}); check their footprint and CRS"
        )
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
        if reducer == "mean":
            return np.where(n > 0, acc / n, np.nan).astype(np.float32)
        q = 50.0 if reducer == "median" else float(reducer[1:])
        return np.nanpercentile(np.stack(layers), q, axis=0).astype(np.float32)


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


def backscatter_stack(
    files: Sequence[PathLike],
    grid: RegionGrid,
    threads: int = 1,
    scale: str = "power",
    reducer: str = "mean",
) -> tuple[NDArray[np.float32], list[str]]:
    """Temporal backscatter (dB) per available polarisation: co-pol, then cross-pol."""
    sar = [s for s in classify_sar_files(files) if s.kind == "backscatter"]
    bands, names = [], []
    for pols, layer in ((COPOL, LAYER_COPOL_DB), (CROSSPOL, LAYER_CROSSPOL_DB)):
        sel = [s.path for s in sar if s.pol in pols]
        if not sel:
            continue
        log.info("backscatter %s: %d dates, temporal %s", layer, len(sel), reducer)
        bands.append(to_db(temporal_reduce(sel, grid, threads, scale, reducer)))
        names.append(layer)
    if not bands or names[0] != LAYER_COPOL_DB:
        raise MissingInputError(
            f"no co-polarised (VV/HH) backscatter file among {[Path(f).name for f in files]}; "
            "name files ..._VV.tif or ..._HH.tif"
        )
    return np.stack(bands), names


def coherence_stack(
    files: Sequence[PathLike],
    grid: RegionGrid,
    threads: int = 1,
    reducer: str = "mean",
    max_baseline_days: int | None = None,
    months: Sequence[int] | None = None,
) -> NDArray[np.float32]:
    """Co-pol coherence (0..1) over the selected pairs (see :func:`select_pairs`)."""
    pairs = [s for s in classify_sar_files(files) if s.kind == "coherence"]
    if not pairs:
        raise MissingInputError(f"no coherence file (..._corr.tif) among {list(map(str, files))}")
    chosen = select_pairs(pairs, max_baseline_days, months)
    if not chosen:
        raise InputDataError(
            f"none of the coherence pairs {[p.path.name for p in pairs]} has a baseline <= "
            f"{max_baseline_days} days in months {list(months or [])}; widen sar.max_baseline_days "
            "or sar.months"
        )
    log.info("coherence: %d of %d pairs, temporal %s", len(chosen), len(pairs), reducer)
    sel = [p.path for p in chosen]
    coh = temporal_reduce(sel, grid, threads, "power", reducer)
    if np.nanmax(coh) > 1.0 + 1e-3 or np.nanmin(coh) < -1e-3:
        raise InputDataError(
            f"coherence files {[p.name for p in sel]} hold values outside 0..1 "
            f"({np.nanmin(coh):.2f}..{np.nanmax(coh):.2f}); pass coherence magnitude, not phase"
        )
    return coh


def build_backscatter(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dest: PathLike,
    threads: int = 1,
    scale: str = "power",
    reducer: str = "mean",
) -> None:
    grid = RegionGrid.load(grid_path)
    data, names = backscatter_stack(files, grid, threads, scale, reducer)
    write_raster(dest, data, grid, names, nodata=np.nan, tags={"UNITS": "dB", "REDUCER": reducer})


def build_coherence(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dest: PathLike,
    threads: int = 1,
    reducer: str = "mean",
    max_baseline_days: int | None = None,
    months: Sequence[int] | None = None,
) -> None:
    grid = RegionGrid.load(grid_path)
    coh = coherence_stack(files, grid, threads, reducer, max_baseline_days, months)
    write_raster(dest, coh, grid, [LAYER_COHERENCE], nodata=np.nan, tags={"REDUCER": reducer})
