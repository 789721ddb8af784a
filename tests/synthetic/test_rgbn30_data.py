"""The rgbn30 test region (tests/data/rgbn30/data.py): a 30 m Landsat 7 ETM+-like 4-band 8-bit
scene and its glacier inventory, generated from a seed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import yaml
from data.rgbn30.data import BANDS, DN_SCALE, SHAPE, write_region

from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.labels import rasterize_inventory
from glaciermap.ingest.optical import build_optical_composite, discover_scenes


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    t0 = time.perf_counter()
    info = write_region(tmp_path_factory.mktemp("rgbn30_a"), seed=0)
    info["seconds"] = time.perf_counter() - t0
    print(f"rgbn30 seed 0 written in {info['seconds']:.1f} s")
    return info


@pytest.fixture(scope="module")
def grid(region: dict[str, Any]) -> RegionGrid:
    rc = region["region_config"]
    return RegionGrid.from_bounds(rc["crs"], rc["bounds"], rc["resolution_m"])


@pytest.fixture(scope="module")
def dn(region: dict[str, Any]) -> np.ndarray:
    with rasterio.open(region["image"]) as src:
        return src.read()


@pytest.fixture(scope="module")
def label(region: dict[str, Any], grid: RegionGrid) -> np.ndarray:
    return rasterize_inventory(region["inventory"], grid).astype(bool)


def test_layout_and_format(region: dict[str, Any], grid: RegionGrid) -> None:
    root = region["image"].parents[4]
    assert region["image"].parent == root / "data" / "rgbn30" / "2002" / "optical"
    assert region["sidecar"] == region["image"].with_name(region["image"].name + ".bands.yaml")
    assert region["inventory"] == root / "data" / "inventory" / "rgbn30_2002.gpkg"
    rc = region["region_config"]
    assert rc["resolution_m"] == 30 and rc["years"] == [2002] and rc["crs"] == "EPSG:32643"
    with rasterio.open(region["image"]) as src:
        assert src.count == 4 and src.dtypes == ("uint8",) * 4 and src.nodata == 0
        assert src.shape == SHAPE == grid.shape
        assert src.crs == grid.rio_crs
        assert src.transform.almost_equals(grid.transform)  # the grid is the scene's pixels
        assert list(src.descriptions) == list(BANDS)
    side = yaml.safe_load(region["sidecar"].read_text())
    assert side["bands"] == {"blue": 1, "green": 2, "red": 3, "nir": 4}
    assert side["nodata"] == 0 and str(side["date"]) == "2002-09-12"


def test_deterministic_for_a_seed(region: dict[str, Any], tmp_path: Path) -> None:
    again = write_region(tmp_path, seed=0)
    for key in ("image", "sidecar", "inventory"):
        assert again[key].read_bytes() == region[key].read_bytes(), key
    assert again["region_config"] == region["region_config"]


def test_glacier_fraction_and_inventory(
    region: dict[str, Any], label: np.ndarray, dn: np.ndarray
) -> None:
    frac = float(label.mean())
    print(f"glacier fraction {frac:.3f}, {region['n_glaciers']} glaciers")
    assert 0.50 <= frac <= 0.65
    # The inventory rasterizes to exactly the glacier cover the scene was drawn from.
    assert frac == pytest.approx(region["glacier_fraction"], abs=1e-9)
    import geopandas as gpd

    inv = gpd.read_file(region["inventory"])
    assert {"RGIId", "Name"} <= set(inv.columns) and inv["RGIId"].is_unique
    assert len(inv) == region["n_glaciers"] > 10
    # Real-data traits: saturated visible bands over snow, nodata at the scene edge.
    valid = (dn > 0).all(axis=0)
    assert 0.0 < 1 - valid.mean() < 0.02
    assert ((dn == 0).any(axis=0) == ~valid).all()  # nodata is all bands or none
    sat = (dn[:3] == 255).any(axis=0)
    assert 0.05 < sat[label].mean() and sat[~label & valid].mean() < 0.05
    assert (dn[3] == 255).mean() < 0.01  # NIR hardly saturates


def test_reads_through_optical_ingestion(
    region: dict[str, Any], grid: RegionGrid, dn: np.ndarray, tmp_path: Path
) -> None:
    files = sorted(region["optical_dir"].iterdir())  # as the workflow lists the folder
    scenes = discover_scenes(files)
    assert len(scenes) == 1 and scenes[0].generic and scenes[0].date == "2002-09-12"
    grid_path = tmp_path / "grid.json"
    grid.save(grid_path)
    dest = tmp_path / "optical.tif"
    build_optical_composite(files, grid_path, dest)
    with rasterio.open(dest) as src:
        assert list(src.descriptions) == [*BANDS, "clear_count"]
        refl = src.read()
    valid = (dn > 0).all(axis=0)
    assert np.isnan(refl[:4, ~valid]).all() and np.isfinite(refl[:4, valid]).all()
    np.testing.assert_allclose(refl[:4, valid], dn[:, valid] * DN_SCALE, rtol=1e-5)
    assert 0.0 < np.nanmin(refl[:4]) and np.nanmax(refl[:4]) < 0.9  # TOA reflectance
    assert (refl[4] == valid).all()


def test_random_forest_difficulty(dn: np.ndarray, label: np.ndarray) -> None:
    """Not trivially separable: an RF on the raw bands, west half -> east half."""
    from sklearn.ensemble import RandomForestClassifier

    valid = (dn > 0).all(axis=0)
    x = dn.reshape(4, -1).T.astype(np.float32)
    y = label.ravel()
    west = np.zeros(label.shape, dtype=bool)
    west[:, : label.shape[1] // 2] = True
    train = np.flatnonzero((valid & west).ravel())
    test = (valid & ~west).ravel()
    rf = RandomForestClassifier(n_estimators=50, n_jobs=2, random_state=0)
    rf.fit(x[train], y[train])
    pred, truth = rf.predict(x[test]), y[test]

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        return float((a & b).sum() / (a | b).sum())

    glacier, background = iou(pred, truth), iou(~pred, ~truth)
    print(
        f"RF west->east: glacier IoU {glacier:.3f}, background IoU {background:.3f}, "
        f"mIoU {(glacier + background) / 2:.3f}"
    )
    assert 0.6 <= glacier <= 0.92
