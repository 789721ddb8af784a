"""A user's case end to end: a 30 m four-band 8-bit scene with a sidecar, an inventory, no
DEM and no SAR (tests/data/rgbn30), through the README's `rule all` with RF and U-Net."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import yaml
from data.rgbn30.data import write_region
from workflow_helpers import snakemake

pytestmark = pytest.mark.workflow


def rgbn30_config(region: dict) -> dict:  # type: ignore[type-arg]
    """A user config that declares only this region: nothing of the demo."""
    return {
        "data_dir": "data",
        "regions": {"rgbn30": region},
        "targets": ["rgbn30_2002"],
        "datasets": {"rgbn30": {"members": ["rgbn30_2002"], "tile_size": 64, "block_tiles": 2}},
        "model": {"dataset": "rgbn30", "arch": "unet", "featureset": "rgbn"},
        "training": {
            "cnn": {
                "epochs": 12,
                "min_epochs": 6,
                "patches_per_epoch": 96,
                "batch_size": 8,
                "base_channels": 8,
                "depth": 3,
                "ensemble": 2,
            },
            "rf": {"n_estimators": 30, "max_samples": 30000, "tune": False},
        },
        "inference": {"window": 64, "overlap": 16, "block": 256},
        "benchmark": {"archs": ["rf", "unet"], "featuresets": ["rgbn"]},
        "threads": {"ingest": 1, "train": 2, "predict": 2},
    }


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = tmp_path_factory.mktemp("rgbn30")
    info = write_region(wd, seed=0)
    (wd / "config").mkdir()
    (wd / "config/config.yaml").write_text(yaml.safe_dump(rgbn30_config(info["region_config"])))
    snakemake(wd, "--cores", "2")
    return wd


def test_runs_without_dem_and_sar(done: Path) -> None:
    assert not (done / "results/terrain").exists()
    assert not (done / "resources").exists()  # no demo world built for a user's config
    with rasterio.open(done / "results/features/rgbn30_2002.vrt") as src:
        layers = set(src.descriptions)
    assert {"blue", "green", "red", "nir", "brightness"} <= layers
    assert not {"elevation", "slope", "swir1"} & layers


def test_per_model_outlines_and_honest_metrics(done: Path) -> None:
    for model in ("rf_rgbn", "unet_rgbn"):
        gdf = gpd.read_file(done / f"results/outlines/rgbn30_2002/{model}.gpkg", layer="glaciers")
        assert len(gdf) > 0 and gdf.geometry.is_valid.all()
        m = json.loads((done / f"results/eval/rgbn30_2002/{model}.json").read_text())
        for key in ("iou", "iou_background", "miou", "all_glacier_iou", "all_glacier_miou"):
            assert 0 <= m[key] <= 1, (model, key, m)
        assert m["miou"] > m["all_glacier_miou"] + 0.2, m  # far better than "all glacier"
    outlines = gpd.read_file(done / "outlines/rgbn30_2002.gpkg", layer="glaciers")
    complexes = gpd.read_file(done / "outlines/rgbn30_2002.gpkg", layer="complexes")
    assert len(outlines) > len(complexes)  # split into glaciers along the inventory's divides
    assert outlines["inventory_id"].notna().any()


def test_report_and_table(done: Path) -> None:
    for rel in (
        "results/quicklooks/rgbn30_2002/false_colour.png",
        "results/quicklooks/rgbn30_2002/elevation.png",  # a placeholder: no DEM
        "results/models/rgbn30/unet_rgbn/history.png",
    ):
        assert (done / rel).stat().st_size > 0, rel
    table = (done / "tables/rgbn30_benchmark.md").read_text()
    assert "| U-Net | RGB+NIR |" in table and "| RF | RGB+NIR |" in table and "mIoU" in table
    test = json.loads((done / "results/eval/rgbn30/test/unet_rgbn.json").read_text())
    assert len(test["seeds"]) == 2 and 0 <= test["seed_miou_sd"] < 0.2
    snakemake(done, "--report", "report.html")
    assert "false_colour.png" in (done / "report.html").read_text(errors="replace")
