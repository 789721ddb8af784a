"""Shared fixtures: tiny grids and rasters, and the real sample data of ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from glaciermap.core.grid import RegionGrid, write_raster

REPO = Path(__file__).resolve().parents[1]
# Real sample data (never copied into the repo): $GLACIERMAP_SHARED_DATA or ../shared/data.
SHARED_DATA = Path(os.environ.get("GLACIERMAP_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real OGGM samples); tests using it skip where it is absent."""
    if not (SHARED_DATA / "oggm").is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (only on the dev machine)")
    return SHARED_DATA


@pytest.fixture
def grid() -> RegionGrid:
    """A 40 x 50 pixel UTM grid at 10 m."""
    return RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 400500, 4000400), 10.0)


@pytest.fixture
def write(tmp_path: Path, grid: RegionGrid):  # type: ignore[no-untyped-def]
    """write(name, array, names) -> path of a GeoTIFF on the fixture grid."""

    def _write(name: str, data: np.ndarray, names: list[str]) -> Path:
        path = tmp_path / name
        write_raster(path, data.astype(np.float32), grid, names, nodata=np.nan)
        return path

    return _write
