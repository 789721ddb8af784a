"""SAR layers on the region grid: temporal backscatter in dB and stacked InSAR coherence.

Backscatter files are single-polarisation rasters named ``..._{VV|VH|HH|HV}.tif`` (as ASF
HyP3 RTC products are), holding linear power (gamma0/sigma0) unless told otherwise; dates come
from the first ``YYYYMMDD`` in the name. Coherence files are named ``..._corr.tif`` (HyP3
InSAR) or contain ``coh``; values 0..1. Co-pol is VV or HH, cross-pol VH or HV.
Averaging is done in linear power, then converted: ``dB = 10 log10(power)``.
"""

from __future__ import annotations

import logging
import re
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


def is_coherence_file(path: PathLike) -> bool:
    return any(s.kind == "coherence" for s in classify_sar_files([path]))


def to_db(power: NDArray[np.floating], floor: float = 1e-6) -> NDArray[np.float32]:
    """Linear power to decibels; values below ``floor`` are clipped (no -inf)."""
    with np.errstate(invalid="ignore"):
        return (10.0 * np.log10(np.maximum(power, floor))).astype(np.float32)


def _temporal_mean(
    paths: Sequence[Path], grid: RegionGrid, threads: int, scale: str = "power"
) -> NDArray[np.float32]:
    """Mean over files on the grid (power domain); an error if none overlaps the grid."""
    acc = np.zeros(grid.shape, dtype=np.float64)
    n = np.zeros(grid.shape, dtype=np.int32)
    for p in paths:
        a = reproject_to_grid(p, grid, CONTINUOUS, bands=[1], threads=threads)[0]
        if scale == "amplitude":
            a = a**2
        elif scale == "db":
            a = 10 ** (a / 10)
        ok = np.isfinite(a)
        acc[ok] += a[ok]
        n[ok] += 1
    if not n.any():
        raise InputDataError(
            f"SAR files {[p.name for p in paths]} do not overlap the region grid {grid.bounds} "
            f"({grid.crs}); check their footprint and CRS"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, acc / n, np.nan).astype(np.float32)


def backscatter_stack(
    files: Sequence[PathLike], grid: RegionGrid, threads: int = 1, scale: str = "power"
) -> tuple[NDArray[np.float32], list[str]]:
    """Temporal mean backscatter (dB) per available polarisation: co-pol, then cross-pol."""
    sar = [s for s in classify_sar_files(files) if s.kind == "backscatter"]
    bands, names = [], []
    for pols, layer in ((COPOL, LAYER_COPOL_DB), (CROSSPOL, LAYER_CROSSPOL_DB)):
        sel = [s.path for s in sar if s.pol in pols]
        if not sel:
            continue
        log.info("backscatter %s: %d dates", layer, len(sel))
        bands.append(to_db(_temporal_mean(sel, grid, threads, scale)))
        names.append(layer)
    if not bands or names[0] != LAYER_COPOL_DB:
        raise MissingInputError(
            f"no co-polarised (VV/HH) backscatter file among {[Path(f).name for f in files]}; "
            "name files ..._VV.tif or ..._HH.tif"
        )
    return np.stack(bands), names


def coherence_stack(
    files: Sequence[PathLike], grid: RegionGrid, threads: int = 1
) -> NDArray[np.float32]:
    """Mean co-pol coherence (0..1) over all pairs."""
    sel = [s.path for s in classify_sar_files(files) if s.kind == "coherence"]
    if not sel:
        raise MissingInputError(f"no coherence file (..._corr.tif) among {list(map(str, files))}")
    coh = _temporal_mean(sel, grid, threads)
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
) -> None:
    grid = RegionGrid.load(grid_path)
    data, names = backscatter_stack(files, grid, threads, scale)
    write_raster(dest, data, grid, names, nodata=np.nan, tags={"UNITS": "dB"})


def build_coherence(
    files: Sequence[PathLike], grid_path: PathLike, dest: PathLike, threads: int = 1
) -> None:
    grid = RegionGrid.load(grid_path)
    write_raster(
        dest, coherence_stack(files, grid, threads), grid, [LAYER_COHERENCE], nodata=np.nan
    )
