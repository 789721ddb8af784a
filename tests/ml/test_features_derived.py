"""Derived layers of the feature stack (brightness, ratios, texture), block-wise writing,
and the layers a model takes (model_layers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from glaciermap.core.errors import ConfigError, MissingLayerError
from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.core.io import band_names, read_bands
from glaciermap.ingest.optical import COMMON_NAMES
from glaciermap.ml.features import (
    FEATURE_SETS,
    RATIO_EPS,
    RATIO_MAX,
    VALID,
    band_ratio,
    brightness,
    build_feature_stack,
    feature_indices,
    local_mean_std,
    model_layers,
    select_derived,
)
from glaciermap.registry import FEATURESET_INPUTS

RGBN = ["blue", "green", "red", "nir"]
RGBN_DERIVED = [
    "ndwi",
    "brightness",
    "ratio_nir_red",
    "ratio_blue_red",
    "brightness_mean_5",
    "brightness_std_5",
]


def _noise(grid: RegionGrid, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 0.9, (n, *grid.shape)).astype(np.float32)


def _direct_mean_std(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Window statistics pixel by pixel: finite pixels of the window inside the array."""
    h = k // 2
    mean = np.full(x.shape, np.nan)
    std = np.full(x.shape, np.nan)
    for r in range(x.shape[0]):
        for c in range(x.shape[1]):
            if not np.isfinite(x[r, c]):
                continue
            w = x[max(0, r - h) : r + h + 1, max(0, c - h) : c + h + 1]
            w = w[np.isfinite(w)]
            mean[r, c], std[r, c] = w.mean(), w.std()
    return mean, std


def test_four_band_stack_without_dem(tmp_path: Path, grid: RegionGrid, write) -> None:  # type: ignore[no-untyped-def]
    grid.save(tmp_path / "g.json")
    opt = _noise(grid, 4)
    opt[:, 0, 0] = np.nan  # a nodata pixel
    o = write("opt.tif", opt, RGBN)
    out = tmp_path / "f.tif"
    names = build_feature_stack(tmp_path / "g.json", o, dest=out)
    assert names == [*RGBN, *RGBN_DERIVED]
    assert band_names(out) == [*names, VALID]
    assert "elevation" not in names and "slope" not in names and "ndsi" not in names
    (valid,), _ = read_bands(out, [VALID])
    assert valid[0, 0] == 0 and valid.sum() == valid.size - 1
    stack, _ = read_bands(out)
    assert np.isfinite(stack[:, valid == 1]).all()
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "float32" and src.count == len(names) + 1
    # the same with a selection and another texture window
    sel = build_feature_stack(
        tmp_path / "g.json",
        o,
        dest=tmp_path / "s.tif",
        derived=["brightness", "brightness_std", "ndsi"],  # ndsi: no swir1 here, left out
        texture_px=3,
    )
    assert sel == [*RGBN, "brightness", "brightness_std_3"]


def test_six_band_stack_with_dem_keeps_positional_call(
    tmp_path: Path,
    grid: RegionGrid,
    write,  # type: ignore[no-untyped-def]
) -> None:
    grid.save(tmp_path / "g.json")
    o = write("opt.tif", _noise(grid, 6), list(COMMON_NAMES))
    d = write("dem.tif", np.full(grid.shape, 4000.0), ["elevation"])
    s = write("slope.tif", np.full(grid.shape, 10.0), ["slope"])
    names = build_feature_stack(tmp_path / "g.json", o, d, s, tmp_path / "f.tif")
    assert names[:8] == [*COMMON_NAMES, "elevation", "slope"]
    assert {"ndsi", "ndwi", "ratio_swir1_red", "brightness_mean_5"} <= set(names[8:])
    for fs in ("optical", "optical_dem"):
        assert len(feature_indices(names, fs)) == len(FEATURE_SETS[fs])


def test_brightness_and_ratios_on_a_tiny_array() -> None:
    bands = {
        "blue": np.array([[0.1, 0.0]]),
        "green": np.array([[0.2, 0.0]]),
        "red": np.array([[0.3, 0.0]]),
        "nir": np.array([[0.6, np.nan]]),
    }
    b = brightness(bands)
    assert b[0, 0] == pytest.approx(0.3) and np.isnan(b[0, 1])
    assert brightness({"red": np.array([0.4]), "swir1": np.array([9.0])})[0] == pytest.approx(0.4)
    r = band_ratio(bands["nir"], bands["red"])
    assert r[0, 0] == pytest.approx((0.6 + RATIO_EPS) / (0.3 + RATIO_EPS))
    assert np.isnan(r[0, 1])
    zero = band_ratio(np.array([0.0, 0.5, 0.5]), np.array([0.0, 0.0, -RATIO_EPS]))
    assert zero[0] == pytest.approx(1.0)  # 0/0 -> 1, not NaN
    assert zero[1] == pytest.approx(RATIO_MAX) and zero[2] == RATIO_MAX  # ~0 and 0 denominators
    assert (band_ratio(np.array([-0.5]), np.array([0.2])) == 0).all()  # clipped at 0


def test_stack_values(tmp_path: Path, grid: RegionGrid, write) -> None:  # type: ignore[no-untyped-def]
    grid.save(tmp_path / "g.json")
    opt = np.stack([np.full(grid.shape, v, dtype=np.float32) for v in (0.1, 0.2, 0.3, 0.6)])
    o = write("opt.tif", opt, RGBN)
    out = tmp_path / "f.tif"
    build_feature_stack(tmp_path / "g.json", o, dest=out)
    layers, _ = read_bands(out, ["brightness", "ratio_nir_red", "ratio_blue_red", "ndwi"])
    assert np.allclose(layers[0], 0.3)
    assert np.allclose(layers[1], 0.61 / 0.31)
    assert np.allclose(layers[2], 0.11 / 0.31)
    assert np.allclose(layers[3], (0.2 - 0.6) / 0.8)
    (std,), _ = read_bands(out, ["brightness_std_5"])
    assert np.allclose(std, 0, atol=1e-6)  # a constant image has no texture, edges included


def test_texture_equals_direct_computation_incl_edges_and_nodata() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (11, 13)).astype(np.float32)
    x[5, 6] = np.nan
    x[0, 0:3] = np.nan
    for k in (3, 5):
        mean, std = local_mean_std(x, k)
        dmean, dstd = _direct_mean_std(x.astype(np.float64), k)
        assert np.array_equal(np.isnan(mean), np.isnan(x))
        assert np.allclose(mean, dmean, atol=1e-6, equal_nan=True)
        assert np.allclose(std, dstd, atol=1e-6, equal_nan=True)
    mean, std = local_mean_std(x, 5)
    corner = x[:4, :4][np.isfinite(x[:4, :4])]  # window of (1, 1), cut by the edges
    assert mean[1, 1] == pytest.approx(corner.mean(), abs=1e-6)
    assert std[1, 1] == pytest.approx(corner.std(), abs=1e-6)
    with pytest.raises(ConfigError, match="odd"):
        local_mean_std(x, 4)


def test_stack_texture_matches_direct(tmp_path: Path, grid: RegionGrid, write) -> None:  # type: ignore[no-untyped-def]
    grid.save(tmp_path / "g.json")
    opt = _noise(grid, 4, seed=3)
    opt[:, 10:14, 20:22] = np.nan
    o = write("opt.tif", opt, RGBN)
    out = tmp_path / "f.tif"
    build_feature_stack(tmp_path / "g.json", o, dest=out, block=16)
    (b, m, s), _ = read_bands(out, ["brightness", "brightness_mean_5", "brightness_std_5"])
    dmean, dstd = _direct_mean_std(opt.astype(np.float64).mean(axis=0), 5)
    assert np.allclose(b, opt.mean(axis=0), atol=1e-6, equal_nan=True)
    assert np.allclose(m, dmean, atol=1e-6, equal_nan=True)
    assert np.allclose(s, dstd, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("texture_px", [3, 7])
def test_block_size_invariance(tmp_path: Path, texture_px: int) -> None:
    # 300 x 270 px: a tiled GeoTIFF (256 px tiles), blocks not dividing the region
    grid = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 402700, 4003000), 10.0)
    grid.save(tmp_path / "g.json")

    opt = np.random.default_rng(7).uniform(0, 1, (6, *grid.shape)).astype(np.float32)
    opt[:, 100:140, 250:270] = np.nan  # nodata across a block border and the region's edge
    o = tmp_path / "opt.tif"
    write_raster(o, opt, grid, list(COMMON_NAMES), nodata=np.nan)
    outs = []
    for block in (100, 256, 1024):
        out = tmp_path / f"f{block}.tif"
        build_feature_stack(tmp_path / "g.json", o, dest=out, block=block, texture_px=texture_px)
        outs.append(out)
    ref, names = read_bands(outs[0])
    with rasterio.open(outs[0]) as src:
        assert src.profile["tiled"]
    for other in outs[1:]:
        arr, other_names = read_bands(other)
        assert other_names == names
        assert arr.tobytes() == ref.tobytes()  # bit for bit, NaN included
    # (the files' bytes may differ: band-interleaved tiles are laid out in writing order)


def test_model_layers() -> None:
    six = [*COMMON_NAMES, "elevation", "slope", "sar_copol_db", "ndsi", "ndwi", "brightness"]
    six += ["ratio_nir_red", "ratio_blue_red", "ratio_swir1_red"]
    six += ["brightness_mean_5", "brightness_std_5"]
    assert model_layers("rgbn", six, False) == RGBN
    assert model_layers("rgbn", six, True) == [*RGBN, *RGBN_DERIVED]
    assert model_layers("optical", six, False) == list(FEATURE_SETS["optical"])
    assert model_layers("optical", six, True) == [
        *FEATURE_SETS["optical"],
        "brightness",
        "ratio_nir_red",
        "ratio_blue_red",
        "ratio_swir1_red",
        "brightness_mean_5",
        "brightness_std_5",
    ]
    dem = model_layers("optical_dem", six, True)
    assert "elevation" in dem and "sar_copol_db" not in dem and len(dem) == len(set(dem))
    # a four-band stack: rgbn with its derived layers, derived layers absent are not invented
    four = [*RGBN, "ndwi", "brightness", "ratio_nir_red"]
    assert model_layers("rgbn", four, True) == [*RGBN, "ndwi", "brightness", "ratio_nir_red"]
    assert model_layers("rgbn", four, True, "x.tif") == model_layers("rgbn", [*four, VALID], True)


def test_missing_layer_errors() -> None:
    four = [*RGBN, "ndwi", "brightness"]
    with pytest.raises(MissingLayerError, match=r"\['swir1', 'swir2', 'ndsi'\].*'optical'"):
        model_layers("optical", four, True, "results/features/x_2002.tif")
    with pytest.raises(MissingLayerError, match="ndsi is a derived layer"):
        model_layers("optical", four, False)
    with pytest.raises(MissingLayerError, match="unknown"):
        model_layers("hyperspectral", four, True)
    with pytest.raises(MissingLayerError, match="swir1"):
        feature_indices(four, "optical")


def test_select_derived_and_inputs() -> None:
    assert select_derived(RGBN) == [
        "ndwi",
        "brightness",
        "ratio_nir_red",
        "ratio_blue_red",
        "brightness_mean",
        "brightness_std",
    ]
    assert "ndsi" in select_derived(list(COMMON_NAMES))
    assert select_derived(RGBN, ["brightness_mean_7"], texture_px=7) == ["brightness_mean"]
    assert select_derived(RGBN, []) == []
    with pytest.raises(ConfigError, match="not a derived layer"):
        select_derived(RGBN, ["ndvi"])
    with pytest.raises(ConfigError, match="not a derived layer"):
        select_derived(RGBN, ["brightness_mean_7"])  # texture_px is 5
    assert set(FEATURESET_INPUTS) == set(FEATURE_SETS)
    assert FEATURESET_INPUTS["rgbn"] == FEATURESET_INPUTS["optical"] == {"optical"}
    assert FEATURESET_INPUTS["optical_dem_sar"] == {"optical", "dem", "backscatter", "coherence"}
