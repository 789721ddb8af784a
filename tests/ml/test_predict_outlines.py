from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from hypothesis import given
from hypothesis import strategies as st

from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ml.features import VALID
from glaciermap.ml.models import build_cnn
from glaciermap.ml.predict import ramp_weight, sliding_window_predict, window_origins
from glaciermap.products.outlines import clean_mask, polygonize_probability


@given(st.integers(0, 500), st.integers(1, 300), st.sampled_from([(32, 8), (64, 16), (64, 0)]))
def test_window_lattice_covers_every_pixel(start: int, length: int, wo: tuple[int, int]) -> None:
    window, overlap = wo
    origins = list(window_origins(start, start + length, window, overlap))
    stride = window - overlap
    assert all((o + overlap) % stride == 0 for o in origins)  # fixed lattice
    covered = np.zeros(length, bool)
    for o in origins:
        lo, hi = max(o, start), min(o + window, start + length)
        assert hi > lo  # every window touches the range
        covered[lo - start : hi - start] = True
    assert covered.all()
    # The 1-D ramps of consecutive windows sum to exactly 1 (a partition of unity).
    w1 = ramp_weight(window, overlap)[window // 2]
    total = np.zeros(length)
    for o in origins:
        lo, hi = max(o, start), min(o + window, start + length)
        total[lo - start : hi - start] += w1[lo - o : hi - o]
    assert np.allclose(total, 1.0)


def test_ramp_weight_positive_and_symmetric() -> None:
    w = ramp_weight(64, 16)
    assert (w > 0).all() and w.max() == 1.0
    assert np.allclose(w, w[::-1, ::-1]) and np.allclose(w, w.T)


def _model_dir(tmp_path: Path, n_layers: int, arch: str = "unet") -> Path:
    d = tmp_path / "model"
    d.mkdir()
    torch.manual_seed(0)
    net = build_cnn(arch, n_layers, base=4, depth=2)
    torch.save(net.state_dict(), d / "weights.pt")
    layers = [f"l{i}" for i in range(n_layers)]
    (d / "norm.json").write_text(
        json.dumps({"layers": layers, "mean": [0.0] * n_layers, "std": [1.0] * n_layers})
    )
    (d / "config.json").write_text(
        json.dumps({"arch": arch, "params": {"base_channels": 4, "depth": 2}})
    )
    return d


@pytest.mark.parametrize("arch", ["unet", "segnet", "deeplabv3plus"])
def test_prediction_independent_of_block_size(tmp_path: Path, arch: str) -> None:
    """The window lattice is fixed to the grid: a different block partition, same result."""
    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 600 * 10, 520 * 10), 10)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, *g.shape)).astype(np.float32)
    valid = np.ones((1, *g.shape), np.float32)
    valid[0, :10, :10] = 0
    f = tmp_path / "f.tif"
    write_raster(f, np.concatenate([feats, valid]), g, ["l0", "l1", "l2", VALID], nodata=np.nan)
    model = _model_dir(tmp_path, 3, arch)
    outs = []
    for block in (256, 512):
        dest = tmp_path / f"p{block}.tif"
        sliding_window_predict(f, model, dest, window=64, overlap=16, block=block, device="cpu")
        with rasterio.open(dest) as src:
            outs.append(src.read())
            assert list(src.descriptions) == ["probability", "uncertainty"]
    a, b = outs
    assert np.isnan(a[0, :10, :10]).all()
    ok = np.isfinite(a[0])
    assert np.allclose(a[0, ok], b[0, ok], atol=1e-6)
    # The spread is sqrt(E[p^2] - E[p]^2): float32 noise of p is amplified near zero spread.
    assert np.allclose(a[1, ok], b[1, ok], atol=1e-3)
    assert ((a[0, ok] >= 0) & (a[0, ok] <= 1)).all()
    assert (a[1, ok] >= 0).all()


def test_prediction_names_missing_layers(tmp_path: Path) -> None:
    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 640, 640), 10)
    f = tmp_path / "f.tif"
    write_raster(f, np.ones((2, *g.shape), np.float32), g, ["l0", VALID], nodata=np.nan)
    from glaciermap.core.errors import MissingInputError

    with pytest.raises(MissingInputError, match=r"\['l1', 'l2'\]"):
        sliding_window_predict(
            f, _model_dir(tmp_path, 3), tmp_path / "p.tif", window=64, overlap=16
        )
    assert not (tmp_path / "p.tif").exists()


def test_clean_mask_rules() -> None:
    m = np.zeros((60, 60), bool)
    m[10:40, 10:40] = True
    m[20:22, 20:22] = False  # small hole -> filled
    m[50, 50] = True  # speckle -> removed
    out = clean_mask(m, pixel_size_m=10, smooth_m=0, min_area_km2=0.001, max_hole_km2=0.001)
    assert out[21, 21] and not out[50, 50] and out[10:40, 10:40].all()


def _features_mask(px: float) -> tuple[np.ndarray, dict[str, tuple[slice, slice]]]:
    """A 1.8 x 1.8 km ice field on a ``px`` grid with spurs and gaps 60 m and 90 m wide."""
    n = round(1800 / px)

    def at(a: float, b: float) -> slice:
        return slice(round(a / px), round(b / px))

    m = np.zeros((n, n), bool)
    m[at(0, 900), at(0, 900)] = True  # touches the raster edge (top left)
    parts = {
        "spur60": (at(300, 360), at(900, 1500)),  # ice 60 m wide
        "spur90": (at(600, 690), at(900, 1500)),  # ice 90 m wide
        "gap60": (at(150, 210), at(0, 600)),  # a 60 m wide gap into the ice field
        "gap90": (at(450, 540), at(0, 600)),
    }
    for k, (r, c) in parts.items():
        m[r, c] = k.startswith("spur")
    return m, parts


@pytest.mark.parametrize("px", [10.0, 30.0])
def test_smoothing_acts_in_metres_alike_at_10_and_30_m(px: float) -> None:
    m, parts = _features_mask(px)
    out = clean_mask(m, pixel_size_m=px, smooth_m=30, min_area_km2=0, max_hole_km2=0)
    assert not out[parts["spur60"]][:, round(100 / px) :].any()  # ice up to 2 * smooth_m wide goes
    assert out[parts["spur90"]][:, : round(500 / px)].all()  # wider ice stays
    assert out[parts["gap60"]].all()  # gaps up to 2 * smooth_m wide close
    assert not out[parts["gap90"]][:, round(100 / px) : round(500 / px)].any()
    assert out[0, : round(800 / px)].all()  # ice at the raster edge is not eroded
    assert np.array_equal(clean_mask(m, px, smooth_m=0, min_area_km2=0, max_hole_km2=0), m)


def test_any_positive_smoothing_acts_at_least_at_the_pixel_scale() -> None:
    m, parts = _features_mask(30.0)  # at 30 m the 60 m spur is 2 px wide
    out = clean_mask(m, pixel_size_m=30, smooth_m=5, min_area_km2=0, max_hole_km2=0)
    assert not out[parts["spur60"]][:, 2:].any()


def test_polygonize_attributes(tmp_path: Path) -> None:
    g = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 401000, 4001000), 10)
    p = np.zeros((2, *g.shape), np.float32)
    p[0, 10:50, 10:60] = 0.9  # 0.2 km2
    p[0, 70:90, 70:90] = 0.7  # 0.04 km2
    p[0, 95, 95] = 0.99  # speckle
    prob = tmp_path / "p.tif"
    write_raster(prob, p, g, ["probability", "uncertainty"], nodata=np.nan)
    inv = tmp_path / "inv.gpkg"
    from shapely.geometry import box

    gpd.GeoDataFrame(
        {"RGIId": ["RGI60-14.00001"]}, geometry=[box(400100, 4000500, 400600, 4000900)], crs=g.crs
    ).to_crs("EPSG:4326").to_file(inv)
    out = tmp_path / "o.gpkg"
    written = polygonize_probability(
        prob,
        out,
        "hunza",
        2021,
        min_area_km2=0.01,
        smooth_m=30,
        sensor="sentinel-2-l2a",
        acquisition_dates=["2021-08-18"],
        inventory=inv,
    )
    back = gpd.read_file(out, layer="glaciers")
    assert len(back) == 2 and back.crs == g.rio_crs
    assert len(gpd.read_file(out, layer="complexes")) == 2
    assert back.geometry.is_valid.all()
    big = back.sort_values("area_km2").iloc[-1]
    assert big["area_km2"] == pytest.approx(0.2, rel=0.05)
    assert big["mean_probability"] == pytest.approx(0.9, abs=0.01)
    assert big["inventory_id"] == "RGI60-14.00001"
    assert set(back["region"]) == {"hunza"} and set(back["year"]) == {2021}
    assert {"glacier_id", "perimeter_km", "sensor", "acquisition_dates"} <= set(back.columns)
    assert written.glaciers == 2 and written.complexes == 2
