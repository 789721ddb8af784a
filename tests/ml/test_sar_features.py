from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError, MissingLayerError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import band_names, read_bands
from glaciermap.ingest.names import classify_sar_files
from glaciermap.ingest.optical import COMMON_NAMES
from glaciermap.ingest.sar import backscatter_stack, coherence_stack, to_db
from glaciermap.ml.features import (
    FEATURE_SETS,
    VALID,
    build_feature_stack,
    feature_indices,
    normalized_difference,
)


def _geo(path: Path, value: np.ndarray) -> Path:
    t = Affine(0.0002, 0, 73.85, 0, -0.0002, 36.1)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=value.shape[1],
        height=value.shape[0],
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=t,
        nodata=np.nan,
    ) as d:
        d.write(value.astype(np.float32), 1)
    return path


@pytest.fixture
def sar_grid() -> RegionGrid:
    return RegionGrid.from_bounds("EPSG:32643", (400000, 3990000, 401000, 3991000), 20)


def test_to_db() -> None:
    assert np.allclose(to_db(np.array([1.0, 0.1, 0.01])), [0, -10, -20])
    assert np.isfinite(to_db(np.array([0.0]))).all()


def test_classify_names() -> None:
    files = [
        "S1A_IW_20210806T011520_DVP_RTC20_G_gpuned_5A3C_VV.tif",
        "S1A_IW_20210806T011520_DVP_RTC20_G_gpuned_5A3C_VH.tif",
        "S1AA_20210806T011520_20210818T011520_VVP012_INT40_G_ueF_7C1D_corr.tif",
        "readme.tif",
    ]
    kinds = [(s.kind, s.pol, s.dates) for s in classify_sar_files(files)]
    assert ("backscatter", "VV", ("20210806",)) in kinds
    assert ("coherence", "copol", ("20210806", "20210818")) in kinds
    assert len(kinds) == 3


def test_backscatter_mean_in_linear_power(tmp_path: Path, sar_grid: RegionGrid) -> None:
    shape = (600, 1200)
    a = _geo(tmp_path / "S1A_IW_20210806T0_VV.tif", np.full(shape, 0.1))
    b = _geo(tmp_path / "S1A_IW_20210818T0_VV.tif", np.full(shape, 0.3))
    c = _geo(tmp_path / "S1A_IW_20210818T0_VH.tif", np.full(shape, 0.01))
    data, names = backscatter_stack([a, b, c], sar_grid)
    assert names == ["sar_copol_db", "sar_crosspol_db"]
    assert np.allclose(data[0], 10 * np.log10(0.2), atol=1e-4)  # mean of power, not of dB
    assert np.allclose(data[1], -20, atol=1e-4)
    with pytest.raises(MissingInputError, match="co-polarised"):
        backscatter_stack([c], sar_grid)


def test_coherence_range_checked(tmp_path: Path, sar_grid: RegionGrid) -> None:
    ok = _geo(tmp_path / "x_20210806_20210818_corr.tif", np.full((600, 1200), 0.4))
    assert np.allclose(coherence_stack([ok], sar_grid), 0.4)
    bad = _geo(tmp_path / "y_20210806_20210818_corr.tif", np.full((600, 1200), 3.0))
    with pytest.raises(InputDataError, match=r"outside 0\.\.1"):
        coherence_stack([bad], sar_grid)


def test_normalized_difference() -> None:
    nd = normalized_difference(np.array([0.8, 0.0]), np.array([0.2, 0.0]))
    assert nd[0] == pytest.approx(0.6) and np.isnan(nd[1])


def test_feature_stack_and_sets(tmp_path: Path, grid: RegionGrid, write) -> None:  # type: ignore[no-untyped-def]
    grid.save(tmp_path / "g.json")
    opt = np.stack([np.full(grid.shape, v) for v in (0.5, 0.6, 0.5, 0.4, 0.1, 0.05)])
    opt[0, 0, 0] = np.nan
    o = write("opt.tif", opt, list(COMMON_NAMES))
    d = write("dem.tif", np.full(grid.shape, 4000.0), ["elevation"])
    s = write("slope.tif", np.full(grid.shape, 10.0), ["slope"])
    b = write("bs.tif", np.full((1, *grid.shape), -10.0), ["sar_copol_db"])
    out = tmp_path / "f.tif"
    names = build_feature_stack(tmp_path / "g.json", o, d, s, out, backscatter=b)
    assert band_names(out) == [*names, VALID]
    (ndsi,), _ = read_bands(out, ["ndsi"])
    assert ndsi[1, 1] == pytest.approx((0.6 - 0.1) / 0.7)
    (valid,), _ = read_bands(out, [VALID])
    assert valid[0, 0] == 0 and valid[1, 1] == 1
    assert len(feature_indices(names, "optical_dem")) == len(FEATURE_SETS["optical_dem"])
    with pytest.raises(MissingLayerError, match="sar_crosspol_db"):
        feature_indices(names, "optical_dem_sar", str(out))
    with pytest.raises(MissingLayerError, match="unknown"):
        feature_indices(names, "hyperspectral")


def test_four_band_imagery_supports_rgbn_only(tmp_path: Path, grid: RegionGrid, write) -> None:  # type: ignore[no-untyped-def]
    grid.save(tmp_path / "g.json")
    o = write("opt.tif", np.full((4, *grid.shape), 0.3), ["blue", "green", "red", "nir"])
    d = write("dem.tif", np.full(grid.shape, 4000.0), ["elevation"])
    s = write("slope.tif", np.full(grid.shape, 10.0), ["slope"])
    names = build_feature_stack(tmp_path / "g.json", o, d, s, tmp_path / "f.tif")
    assert "ndsi" not in names and "ndwi" in names
    assert len(feature_indices(names, "rgbn")) == 4
    with pytest.raises(MissingLayerError, match="swir1"):
        feature_indices(names, "optical")
    (valid,), _ = read_bands(tmp_path / "f.tif", [VALID])
    assert valid.all()


def test_temporal_median_resists_an_outlier_date(tmp_path: Path, sar_grid: RegionGrid) -> None:
    shape = (600, 1200)
    files = [
        _geo(tmp_path / f"S1A_IW_202108{d:02d}T0_VV.tif", np.full(shape, v))
        for d, v in ((6, 0.1), (18, 0.1), (30, 10.0))  # one wet-snow/flooded outlier date
    ]
    med, _ = backscatter_stack(files, sar_grid, reducer="median")
    mean, _ = backscatter_stack(files, sar_grid, reducer="mean")
    assert np.allclose(med[0], -10.0, atol=1e-4)
    assert np.allclose(mean[0], 10 * np.log10(10.2 / 3), atol=1e-3)
    with pytest.raises(ConfigError, match="reducer"):
        backscatter_stack(files, sar_grid, reducer="mode")


def test_coherence_pair_selection(tmp_path: Path, sar_grid: RegionGrid) -> None:
    shape = (600, 1200)
    short = _geo(tmp_path / "S1AA_20210806T0_20210818T0_VVP012_corr.tif", np.full(shape, 0.6))
    long_ = _geo(tmp_path / "S1AA_20210806T0_20210917T0_VVP042_corr.tif", np.full(shape, 0.2))
    winter = _geo(tmp_path / "S1AA_20210105T0_20210117T0_VVP012_corr.tif", np.full(shape, 0.9))
    files = [short, long_, winter]
    assert np.allclose(
        coherence_stack(files, sar_grid, max_baseline_days=12, months=[7, 8, 9]), 0.6
    )
    assert np.allclose(coherence_stack(files, sar_grid, max_baseline_days=12), 0.75)
    assert np.allclose(coherence_stack(files, sar_grid, reducer="median"), 0.6)
    with pytest.raises(InputDataError, match="baseline"):
        coherence_stack(files, sar_grid, max_baseline_days=6)


def test_sar_dates_without_crs_or_off_the_region_are_never_silent(
    tmp_path: Path, sar_grid: RegionGrid, caplog: pytest.LogCaptureFixture
) -> None:
    """A date without CRS is an error (never assumed to be in the grid CRS); a date whose
    footprint misses the region is left out with a warning naming it and the count."""
    shape = (600, 1200)
    a = _geo(tmp_path / "S1A_IW_20210806T0_VV.tif", np.full(shape, 0.1))
    far = tmp_path / "S1A_IW_20210818T0_VV.tif"
    _geo(far, np.full(shape, 0.3))
    with rasterio.open(far, "r+") as d:  # the same scene moved 10 degrees east
        d.transform = Affine(0.0002, 0, 83.85, 0, -0.0002, 36.1)
    with caplog.at_level("WARNING"):
        data, _ = backscatter_stack([a, far], sar_grid)
    assert "1 of 2 files lie outside the region grid" in caplog.text and far.name in caplog.text
    assert np.allclose(data[0], -10, atol=1e-4)  # the far date does not dilute the mean
    bare = tmp_path / "S1A_IW_20210830T0_VV.tif"
    with rasterio.open(
        bare, "w", driver="GTiff", width=50, height=50, count=1, dtype="float32"
    ) as d:
        d.write(np.full((1, 50, 50), 0.2, np.float32))
    with pytest.raises(InputDataError, match=rf"{bare.name}: has no coordinate reference system"):
        backscatter_stack([a, bare], sar_grid)
