"""Boxcar coherence against the analytic case: s2 = g s1 + sqrt(1 - g^2) n."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from glaciermap.core.errors import InputDataError
from glaciermap.ingest.insar import boxcar_coherence, coherence_from_slc_files


def _circular(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


@pytest.mark.parametrize("gamma", [0.2, 0.5, 0.8, 0.95])
def test_recovers_true_coherence(gamma: float) -> None:
    rng = np.random.default_rng(1)
    s1 = _circular(rng, (300, 300))
    s2 = gamma * s1 + np.sqrt(1 - gamma**2) * _circular(rng, (300, 300))
    s2 *= np.exp(1j * 1.3)  # a constant phase offset changes nothing
    coh = boxcar_coherence(s1, s2, (15, 15))
    assert np.nanmean(coh[20:-20, 20:-20]) == pytest.approx(gamma, abs=0.03)


def test_incoherent_bias_matches_theory() -> None:
    rng = np.random.default_rng(2)
    s1, s2 = _circular(rng, (400, 400)), _circular(rng, (400, 400))
    coh = boxcar_coherence(s1, s2, (10, 10))
    assert np.mean(coh) == pytest.approx(np.sqrt(np.pi / (4 * 100)), rel=0.1)


def test_nodata_and_shape_errors() -> None:
    rng = np.random.default_rng(3)
    s1 = _circular(rng, (50, 50))
    s2 = s1.copy()
    s2[25, 25] = np.nan
    coh = boxcar_coherence(s1, s2, (5, 5))
    assert np.isnan(coh[23:28, 23:28]).all() and np.allclose(coh[:10, :10], 1.0)
    with pytest.raises(InputDataError, match="co-register"):
        boxcar_coherence(s1, s1[:10], (5, 5))


def test_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    s1 = _circular(rng, (100, 120)).astype(np.complex64)
    s2 = (0.7 * s1 + np.sqrt(1 - 0.49) * _circular(rng, (100, 120))).astype(np.complex64)
    prof = {
        "driver": "GTiff",
        "width": 120,
        "height": 100,
        "count": 1,
        "dtype": "complex64",
        "crs": "EPSG:32643",
        "transform": Affine(10, 0, 4e5, 0, -10, 4e6),
    }
    for name, data in (("ref.tif", s1), ("sec.tif", s2)):
        with rasterio.open(tmp_path / name, "w", **prof) as dst:
            dst.write(data, 1)
    coherence_from_slc_files(
        tmp_path / "ref.tif", tmp_path / "sec.tif", tmp_path / "coh.tif", (9, 9)
    )
    with rasterio.open(tmp_path / "coh.tif") as src:
        assert src.dtypes[0] == "float32" and src.descriptions[0] == "coherence"
        assert np.nanmean(src.read(1)) == pytest.approx(0.7, abs=0.05)
