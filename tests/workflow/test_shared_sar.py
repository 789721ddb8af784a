"""SAR files in a shared folder (``data/scenes/{year}/sar/``) serve every region they reach,
and a feature stack holds only the layers a configured model uses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from workflow_helpers import planned_jobs, snakemake

from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ingest.catalog import FootprintCache, InputCatalog

pytestmark = pytest.mark.workflow

CRS = "EPSG:32643"
OPT_DEM = "optical_dem"
# Two 6 x 3 km regions side by side in UTM 43N (lon ~74.4, lat ~36.1), one 100 km away.
REGION = {"crs": CRS, "resolution_m": 10, "years": [2021]}
BOUNDS = {
    "west": [450000, 4000000, 456000, 4003000],
    "east": [456000, 4000000, 462000, 4003000],
    "far": [550000, 4000000, 556000, 4003000],
}


def write_sar(path: Path, x0: float, width_px: int = 100) -> None:
    """A backscatter file of 30 m pixels starting at easting ``x0`` (3 km tall), written
    with the package's own writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = RegionGrid(
        crs=CRS, transform=Affine(30, 0, x0, 0, -30, 4003000), width=width_px, height=100
    )
    write_raster(path, np.full((100, width_px), 0.1, np.float32), scene, ["sar"], nodata=np.nan)


def catalogue_config(root: Path) -> dict:  # type: ignore[type-arg]
    return {
        "data_dir": str(root / "data"),
        "regions": {name: {**REGION, "bounds": b} for name, b in BOUNDS.items()},
    }


def test_a_region_takes_the_shared_sar_files_that_reach_it(tmp_path: Path) -> None:
    shared = tmp_path / "data/scenes/2021/sar"
    # 2 km wide, inside west only; one reaching both (x 455000..458000); one ending 300 m
    # west of west (the SAR jobs' own test decides, no margin); an unreadable one.
    write_sar(shared / "S1A_IW_20210806T010203_DVP_RTC30_G_gpuned_AB12_VV.tif", 451000, 66)
    write_sar(shared / "S1A_IW_20210818T010203_DVP_RTC30_G_gpuned_AB12_VV.tif", 455000)
    write_sar(shared / "S1A_IW_20210824T010203_DVP_RTC30_G_gpuned_AB12_VV.tif", 446700)
    (shared / "S1A_IW_20210830T010203_DVP_RTC30_G_gpuned_AB12_VH.tif").write_bytes(b"not a tif")
    own = tmp_path / "data/far/2021/sar/S1A_IW_20210806T000000_DVP_RTC30_G_gpuned_CD34_VV.tif"
    write_sar(own, 900000)  # a region's own files are its own, wherever they lie
    copy = tmp_path / "data/east/2021/sar/S1A_IW_20210818T010203_DVP_RTC30_G_gpuned_AB12_VV.tif"
    write_sar(copy, 455000)  # the shared file's copy in east's own folder: taken once
    cache = tmp_path / "cache/footprints.json"
    said: list[str] = []
    cat = InputCatalog(catalogue_config(tmp_path), footprint_cache=cache, warn=said.append)
    names = {r: sorted(Path(f).name[7:15] for f in cat.sar(r, 2021)) for r in BOUNDS}
    assert names == {"west": ["20210806", "20210818"], "east": ["20210818"], "far": ["20210806"]}
    assert "data/east/2021/sar/" in cat.sar("east", 2021)[0]
    assert cat.input_kinds("east", 2021) == {"optical", "backscatter"}
    # The unreadable file: one warning (not one per region), naming it and what to do.
    (line,) = said
    assert "20210830" in line and "cannot be read" in line and "left out of every region" in line
    # Remembered: a new catalogue reads no header again, a changed file is read again.
    known = json.loads(cache.read_text())
    assert len(known) == 4 and sum(isinstance(v[1], str) for v in known.values()) == 1
    moved = shared / "S1A_IW_20210806T010203_DVP_RTC30_G_gpuned_AB12_VV.tif"
    write_sar(moved, 457000, 66)  # now inside east only
    os.utime(moved, ns=(1, 1))  # a stamp the cache cannot hold for the old file
    again = InputCatalog(catalogue_config(tmp_path), footprint_cache=cache, warn=said.append)
    assert any("20210806" in f for f in again.sar("east", 2021))
    assert not any("20210806" in f for f in again.sar("west", 2021))


def test_a_sar_tile_depends_on_the_dates_over_it(tmp_path: Path) -> None:
    """Per processing tile, the files whose footprint reaches it (grown by a pixel): a new
    date reruns the tiles under it, not the whole region."""
    shared = tmp_path / "data/scenes/2021/sar"
    a = shared / "S1A_IW_20210806T010203_DVP_RTC30_G_gpuned_AB12_VV.tif"
    b = shared / "S1A_IW_20210818T010203_DVP_RTC30_G_gpuned_AB12_VV.tif"
    write_sar(a, 451000, 66)  # west's columns 100-298
    write_sar(b, 455000)  # west's columns 500-600 (and east)
    cat = InputCatalog(catalogue_config(tmp_path))

    def dates(c0: int, width: int) -> set[str]:
        tile = (0, c0, 300, width)
        return {Path(f).name[7:15] for f in cat.sar_under("west", 2021, "backscatter", tile)}

    assert dates(0, 99) == set()  # grown by a pixel: up to x 451000, where a begins
    assert dates(0, 256) == {"20210806"}
    assert dates(256, 244) == {"20210806", "20210818"}  # its halo pixel reaches b
    assert dates(298, 100) == {"20210806"}  # its halo pixel (column 297) is under a
    assert dates(500, 100) == {"20210818"}
    assert cat.sar_under("west", 2021, "coherence", (0, 0, 300, 600)) == []


def test_footprint_cache_survives_a_broken_file(tmp_path: Path) -> None:
    cache = tmp_path / "footprints.json"
    cache.write_text("{ half written")
    f = tmp_path / "a_VV.tif"
    write_sar(f, 451000)
    (fp,) = FootprintCache(cache).lookup([str(f)])
    assert fp == ("EPSG:32643", (451000.0, 4000000.0, 454000.0, 4003000.0))
    assert str(f.resolve()) in json.loads(cache.read_text())  # rewritten whole
    assert set(tmp_path.iterdir()) == {cache, f}  # no temporary file left behind


def test_a_file_in_a_local_crs_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    """A CRS pyproj cannot transform (a local engineering CRS) must not break every run."""
    f = tmp_path / "data/scenes/2021/sar/S1A_IW_20210806T010203_DVP_RTC30_G_gpuned_AB12_VV.tif"
    write_sar(f, 451000)
    local = 'LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
    with rasterio.open(f, "r+") as dst:
        dst.crs = rasterio.crs.CRS.from_wkt(local)
    said: list[str] = []
    cat = InputCatalog(catalogue_config(tmp_path), warn=said.append)
    assert cat.sar("west", 2021) == [] and cat.sar("east", 2021) == []
    (line,) = said
    assert str(f) in line and "cannot be transformed" in line


def user_workdir(tmp_path: Path, model: dict, benchmark: dict) -> Path:  # type: ignore[type-arg]
    """Two real regions for a dry run: shared optical and SAR scenes (the SAR reaching west
    only), a DEM tile name over both, inventories. Dry runs read no pixels."""
    wd = tmp_path / "w"
    data = wd / "data"
    for rel in (
        "scenes/2021/optical/S2A_MSIL2A_20210812T053641_N0301_R005_T43SDA_20210812T083641.tif",
        "dem/Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif",
        "inventory/west_2021.gpkg",
        "inventory/east_2021.gpkg",
    ):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"")
    sar = data / "scenes/2021/sar"
    write_sar(sar / "S1A_IW_20210806T010203_DVP_RTC30_G_gpuned_AB12_VV.tif", 451000)
    write_sar(sar / "S1AA_20210806T010203_20210818T010203_VVP012_INT40_G_ueF_7C1D_corr.tif", 451000)
    cfg = {
        "data_dir": "data",
        "regions": {r: {**REGION, "bounds": BOUNDS[r]} for r in ("west", "east")},
        "targets": ["west_2021", "east_2021"],
        "datasets": {"d": {"members": ["west_2021"], "tile_size": 64, "block_tiles": 1}},
        "model": {"dataset": "d", "arch": "rf", **model},
        "benchmark": benchmark,
    }
    (wd / "config").mkdir(parents=True)
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    return wd


def test_the_dag_gives_sar_to_the_region_it_reaches(tmp_path: Path) -> None:
    """With a SAR model for west, west's stack takes the shared SAR file and east's (which no
    file reaches) has none: east runs its optical_dem model and no SAR job of its own."""
    wd = user_workdir(
        tmp_path,
        {"featureset": "optical_dem_sar", "overrides": {"east_2021": {"featureset": OPT_DEM}}},
        {"archs": ["rf"], "featuresets": ["optical_dem", "optical_dem_sar"]},
    )
    proc = snakemake(wd, "-n", "--cores", "1")
    assert "results/sar/west_2021/backscatter.vrt" in proc.stdout
    assert "results/sar/west_2021/coherence.vrt" in proc.stdout
    assert "results/sar/east_2021/" not in proc.stdout
    assert "results/outlines/east_2021/rf_optical_dem.gpkg" in proc.stdout
    assert "results/outlines/east_2021/rf_optical_dem_sar.gpkg" not in proc.stdout
    assert (wd / ".snakemake/glaciermap/footprints.json").exists()
    # The coherence pairs' selection is the region's: none in season is one line at DAG time
    # (a tile may lack pairs, the region may not).
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["sar"] = {"months": [1, 2]}
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(wd, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("glaciermap: error:")]
    assert "west_2021: none of the 1 coherence pairs" in line and "sar: months" in line


def test_sar_files_no_model_uses_are_not_processed(tmp_path: Path) -> None:
    wd = user_workdir(
        tmp_path, {"featureset": "optical_dem"}, {"archs": ["rf"], "featuresets": ["optical"]}
    )
    jobs = planned_jobs(wd)
    assert jobs["features_tile"] == 2 and jobs["terrain_tile"] == 2
    assert not {r for r in jobs if r.startswith("sar_")}, jobs
    # A SAR model asked for by name: its layers are in no stack, said before any job runs.
    target = "results/outlines/west_2021/rf_optical_dem_sar.gpkg"
    proc = snakemake(wd, "-n", "--cores", "1", target, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("glaciermap: error:")]
    assert "needs backscatter, which no configured model uses" in line
    assert "benchmark: featuresets" in line


def test_dataset_members_without_the_same_layers_are_one_line(tmp_path: Path) -> None:
    """A SAR model trained on west and east: east has no SAR, so the chips could not stack
    the same layers; said before any job runs, naming the member and the folder."""
    wd = user_workdir(
        tmp_path,
        {"featureset": OPT_DEM, "overrides": {"west_2021": {"featureset": "optical_dem_sar"}}},
        {"archs": ["rf"], "featuresets": []},
    )
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["datasets"]["d"]["members"] = ["west_2021", "east_2021"]
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(wd, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("glaciermap: error:")]
    assert "datasets: d: member east_2021 has no backscatter but west_2021 has" in line
    assert "feature set optical_dem_sar (model: / benchmark:) uses it" in line
    assert "data/east/2021/sar/ or data/scenes/2021/sar/" in line
