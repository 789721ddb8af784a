"""The shipped config (config/config.yaml): the region catalogue and, before any data exists,
one dry run that lists every input still missing (not one folder per attempt)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, snakemake

pytestmark = pytest.mark.workflow


def test_catalogue_regions_and_their_roles() -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    regions = cfg["regions"]
    assert {"hunza", "alps", "svalbard"} <= set(regions)
    assert regions["hunza"]["crs"] == "EPSG:32643" and regions["hunza"]["years"] == [2005, 2021]
    assert regions["alps"]["crs"] == "EPSG:3035"  # equal-area across UTM zones 31-33
    assert regions["svalbard"]["crs"] == "EPSG:32633"
    w, s, e, n = regions["alps"]["bounds"]
    assert 800e3 < e - w < 1100e3 and 450e3 < n - s < 650e3  # the Alpine arc, ~1000 x 500 km
    assert cfg["datasets"][cfg["model"]["dataset"]]["members"] == ["alps_2015", "svalbard_2020"]
    assert cfg["changes"]["pairs"] == ["hunza_2005_2021"]


def test_catalogue_epochs_have_date_windows_and_sensors() -> None:
    from glaciermap.ingest.stac import acquisition_request

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    r2005 = acquisition_request(cfg, "hunza", 2005, "optical")
    assert r2005 is not None and r2005["collections"] == ["landsat-c2-l2"]
    assert r2005["datetime"] == "2005-07-15/2005-09-30"
    assert acquisition_request(cfg, "hunza", 2005, "sar") is None  # before Sentinel-1
    for region, year in (("hunza", 2021), ("alps", 2015), ("svalbard", 2020)):
        req = acquisition_request(cfg, region, year, "optical")
        assert req is not None and req["collections"] == ["sentinel-2-l2a"], (region, req)
        assert req["datetime"].startswith(f"{year}-0"), req


def test_fresh_dry_run_lists_every_missing_input(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    proc = snakemake(tmp_path, "-n", "outlines/hunza_2021.gpkg", check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert "Traceback" not in err
    overview = err[err.index("inputs still missing for the configured regions") :]
    for ry, why in (
        ("hunza_2021", "target"),
        ("alps_2015", "member of dataset reference"),
        ("svalbard_2020", "member of dataset reference"),
        ("hunza_2005", "change hunza_2005_2021"),
    ):
        assert f"{ry} ({why}" in overview, overview
    for path in (
        "data/hunza/2021/optical/",
        "data/hunza/2021/sar/",
        "data/alps/2015/sar/",
        "data/inventory/alps_2015.gpkg",
        "data/inventory/svalbard_2020.gpkg",
        "data/dem/",
    ):
        assert path in overview, (path, overview)
    # 2005 has no Sentinel-1 (its model is optical_dem) and is not a training member.
    assert "data/hunza/2005/sar" not in overview and "hunza_2005.gpkg" not in overview
    assert not (tmp_path / "results").exists()  # a dry run wrote nothing


@pytest.mark.parametrize(
    ("inference", "says"),
    [
        ({"window": 128, "overlap": 128}, "inference: overlap 128 must be below"),
        ({"window": 100, "overlap": 16}, "inference: window 100 px is not a multiple of 8"),
    ],
)
def test_sliding_windows_are_checked_before_any_job(
    tmp_path: Path, inference: dict[str, int], says: str
) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    cfg = yaml.safe_load((tmp_path / "config/config.yaml").read_text())
    cfg["inference"] = inference
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "outlines/hunza_2021.gpkg", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    line = next(x for x in proc.stderr.splitlines() if x.startswith("glaciermap: error:"))
    assert says in line, proc.stderr[-2000:]
