"""A real case through the workflow (issue 12 item 5): the real SRTM DEM and RGI outlines of
the Oetztal Alps (../shared/data/oggm) as a region. The optical images are synthetic, rendered
over that real terrain (a Landsat 5 epoch and a Sentinel-2 epoch whose glaciers are the
outlines shrunk by 60 m). The region runs through terrain, labels, a forest, outlines and
their evaluation against the real inventory, and the glacier change between the epochs.
Skipped where ../shared is absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from rasterio.warp import Resampling, reproject
from workflow_helpers import snakemake

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[2]
# As tests/conftest.py: $GLACIERMAP_SHARED_DATA or ../shared/data, never copied into the repo.
SHARED_DATA = Path(os.environ.get("GLACIERMAP_SHARED_DATA", REPO.parent / "shared" / "data"))
OETZTAL = SHARED_DATA / "oggm" / "oetztal"
CRS = "EPSG:32632"
BOUNDS = [630000, 5182000, 636000, 5188000]  # 6 x 6 km around Hintereisferner


def real_terrain_config() -> dict:  # type: ignore[type-arg]
    """Config of the region. The epochs are Landsat 5 2003 (trained on) and Sentinel-2 2021
    (predicted), without SAR: the forest uses optical + DEM."""
    epoch = {"cloud_fraction": 0.0, "coherence": False, "seasonal_snow": 0.1}
    return {
        "data_dir": "data",
        "regions": {
            "oetztal": {"crs": CRS, "bounds": BOUNDS, "resolution_m": 30, "years": [2003, 2021]}
        },
        "demo": {
            "seed": 3,
            "worlds": {
                "oetztal": {
                    "seed": 1,
                    "margin_m": 600,
                    "dem": str(OETZTAL / "srtm_oetztal.tif"),
                    "outlines": str(OETZTAL / "rgi_oetztal.gpkg"),
                    "debris_below_ela_m": 400,
                    "epochs": {
                        2003: {"sensor": "landsat-5", "optical_dates": ["2003-08-25"], **epoch},
                        2021: {
                            "sensor": "sentinel-2",
                            "optical_dates": ["2021-08-18"],
                            "retreat_m": 60,
                            **epoch,
                        },
                    },
                }
            },
        },
        "targets": ["oetztal_2021"],
        "changes": {"pairs": ["oetztal_2003_2021"]},
        "datasets": {"oetztal": {"members": ["oetztal_2003"], "tile_size": 32, "block_tiles": 2}},
        "model": {"dataset": "oetztal", "arch": "rf", "featureset": "optical_dem"},
        "training": {"rf": {"n_estimators": 20, "max_samples": 20000, "tune": False}},
        "benchmark": {"archs": ["rf"], "featuresets": ["optical_dem"]},
        "threads": {"ingest": 1, "train": 2, "predict": 2},
    }


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not OETZTAL.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (only on the dev machine)")
    wd = tmp_path_factory.mktemp("real_terrain")
    (wd / "config").mkdir()
    (wd / "config/config.yaml").write_text(yaml.safe_dump(real_terrain_config()))
    snakemake(wd, "--cores", "2")  # rule all: outlines, metrics, change, maps, table
    return wd


def test_terrain_is_the_real_dem(done: Path) -> None:
    with rasterio.open(done / "results/terrain/oetztal/dem.vrt") as dst:
        ours = dst.read(1, masked=True).filled(np.nan)
        srtm = np.full(ours.shape, np.nan, dtype=np.float32)
        with rasterio.open(OETZTAL / "srtm_oetztal.tif") as src:
            reproject(
                rasterio.band(src, 1),
                srtm,
                dst_transform=dst.transform,
                dst_crs=dst.crs,
                resampling=Resampling.bilinear,
                dst_nodata=np.nan,
            )
    ok = np.isfinite(ours) & np.isfinite(srtm)
    assert ok.mean() > 0.95
    err = np.abs(ours[ok] - srtm[ok])
    # Two resamplings apart (the 1" DEM tiles, then the grid), on 3" SRTM in steep terrain.
    assert np.median(err) < 3.0 and np.percentile(err, 99) < 30.0, (np.median(err), err.max())
    assert 2000 < np.median(ours[ok]) < 3800  # Oetztal: valleys ~2000 m, summits ~3700 m


def test_outlines_scored_against_the_real_inventory(done: Path) -> None:
    m = json.loads((done / "results/eval/oetztal_2021/outlines.json").read_text())
    assert m["status"] == "scored"
    # Trained on 2003 Landsat 5, predicted on 2021 Sentinel-2, all synthetic imagery. The
    # truth is the real glaciers, 60 m smaller.
    assert m["miou"] > m["all_glacier_miou"] + 0.3, m
    assert m["iou"] > 0.6 and m["iou_background"] > 0.6, m
    glaciers = gpd.read_file(done / "outlines/oetztal_2021.gpkg", layer="glaciers")
    rgi = gpd.read_file(OETZTAL / "rgi_oetztal.gpkg")
    id_col = next(c for c in ("RGIId", "rgi_id", "RGIID") if c in rgi.columns)
    named = set(glaciers["inventory_id"].dropna())
    assert len(named) >= 2 and named <= set(rgi[id_col]), sorted(named)[:5]


def test_change_is_a_loss_per_real_glacier(done: Path) -> None:
    change = gpd.read_file(done / "changes/oetztal_2003_2021.gpkg", layer="glaciers")
    assert len(change) >= 2
    area = [c for c in change.columns if "change" in c and "km2" in c]
    assert area, change.columns
    total = float(change[area[0]].sum())
    assert total < 0, change[area[0]].describe()  # the 2021 glaciers are 60 m smaller


def test_report_says_the_imagery_is_synthetic(done: Path) -> None:
    proc = snakemake(done, "--report", "report.html", "--cores", "1")
    assert proc.returncode == 0
    text = (done / "report.html").read_text(errors="replace")
    assert "Synthetic imagery" in text and "srtm_oetztal.tif" in text
