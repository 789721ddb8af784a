"""End to end: the .test/ workflow on synthetic data, its outputs, and what reruns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import yaml
from workflow_helpers import make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_outputs_are_sound(done: Path) -> None:
    gdf = gpd.read_file(done / "outlines/demo_2021.gpkg", layer="glaciers")
    assert len(gdf) > 0 and gdf.geometry.is_valid.all()
    assert gdf.crs.to_epsg() == 32643
    assert {"glacier_id", "area_km2", "mean_probability", "region", "year"} <= set(gdf.columns)
    assert set(gdf["region"]) == {"demo"} and set(gdf["year"]) == {2021}
    m = json.loads((done / "results/eval/demo_2021/outlines.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "iou"):
        assert 0 <= m[key] <= 1
    assert m["iou"] > 0.6, m  # a tiny U-Net, a few epochs, still clearly better than nothing
    # the demo writes debris-cover polygons: per-model metrics score clean and debris ice apart
    mm = json.loads((done / "results/eval/demo_2021/unet_optical_dem_sar.json").read_text())
    assert 0 < mm["debris_fraction"] < 1 and 0 <= mm["iou_debris"] <= 1, mm
    assert 0 <= mm["iou_clean"] <= 1
    with rasterio.open(done / "results/features/demo_2021.vrt") as src:
        assert "sar_copol_coherence" in src.descriptions
    for log in (
        "logs/train/demo/unet_optical_dem_sar.log",
        "logs/predict/demo_2021/unet_optical_dem_sar.log",
        "logs/predict/demo_2021/unet_optical_dem_sar/r1c1.log",
    ):
        assert (done / log).stat().st_size > 0


def test_readme_notebook_example_runs_and_matches_the_workflow(
    done: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's notebook block runs as written in a finished run; its prediction is the
    workflow's (same window/overlap: the same numbers) and comes back georeferenced."""
    import re

    import numpy as np
    from workflow_helpers import REPO

    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- notebook-example.*?```python\n(.*?)```", readme, re.S)
    assert block, "README lost its notebook example"
    monkeypatch.chdir(done)
    scope: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    import glaciermap as gm

    features, glaciers = scope["features"], scope["glaciers"]
    assert features.rio.crs.to_epsg() == 32643 and "ndsi" in list(features["band"].values)
    assert len(glaciers) > 0 and glaciers.crs.to_epsg() == 32643
    assert set(scope["change"]) == {"glaciers", "lost", "gained"}
    cfg = yaml.safe_load((done / "config/config.yaml").read_text())["inference"]
    mine = gm.predict(
        features, "results/models/demo/unet_optical_dem_sar", cfg["window"], cfg["overlap"]
    )
    theirs = gm.open_raster("results/probability/demo_2021/unet_optical_dem_sar.tif", load=True)
    assert mine.rio.transform() == theirs.rio.transform()
    np.testing.assert_allclose(
        mine.sel(band="probability").values, theirs.sel(band="probability").values, atol=1e-5
    )


def test_glacier_change_between_epochs(done: Path) -> None:
    """2005 (Landsat 5, lower ELA) to 2021: the workflow's own outlines show retreat."""
    changes = done / "changes/demo_2005_2021.gpkg"
    glaciers = gpd.read_file(changes, layer="glaciers")
    lost = gpd.read_file(changes, layer="lost")
    total = glaciers[["area_2005_km2", "area_2021_km2"]].sum()
    assert total["area_2021_km2"] < total["area_2005_km2"]
    assert lost["area_km2"].sum() > 0
    assert (done / "results/quicklooks/changes/demo_2005_2021.png").stat().st_size > 10_000


def test_nothing_changed_nothing_reruns(done: Path) -> None:
    assert planned_jobs(done) == {}


def test_changing_one_sar_scene_reruns_sar_and_dependants_only(done: Path, tmp_path: Path) -> None:
    sar = sorted((done / "resources/demo/demo/2021/sar").glob("*_VV.tif"))[0]
    backup = tmp_path / sar.name
    shutil.copy2(sar, backup)
    try:
        with rasterio.open(sar, "r+") as dst:
            dst.write(dst.read(1) * 1.05, 1)
        jobs = planned_jobs(done)
    finally:
        shutil.copy2(backup, sar)
    # the SAR tiles the scene reaches (the .test regions are 2 x 2 tiles), and the gather
    assert 1 <= jobs.get("sar_backscatter_tile", 0) <= 4 and jobs.get("sar_backscatter") == 1
    assert {"features", "predict", "outlines", "evaluate_outlines"} <= set(jobs)
    assert not {
        "optical_composite",
        "optical_composite_tile",
        "terrain",
        "terrain_tile",
        "sar_coherence",
        "sar_coherence_tile",
        "train_cnn",
        "tiles",
    } & set(jobs)
    assert planned_jobs(done) == {}  # restored: nothing to do again


def test_polygonize_parameter_reruns_outlines_and_evaluation_only(done: Path) -> None:
    cfg = done / "config/config.yaml"
    original = cfg.read_text()
    assert "  threshold: 0.5\n" in original
    cfg.write_text(original.replace("  threshold: 0.5\n", "  threshold: 0.6\n"))
    try:
        jobs = planned_jobs(done)
    finally:
        cfg.write_text(original)
    # Polygonization (both epochs) and what comes after it: the evaluation, the change
    # between the epochs and the map that shows outlines.
    # Per-model outlines (rf and unet of benchmark:) follow the same parameters.
    assert jobs == {
        "outlines": 2,
        "model_outlines": 2,
        "changes": 1,
        "evaluate_outlines": 1,
        "quicklooks": 1,
    }


def test_missing_region_gives_clear_message(done: Path) -> None:
    proc = snakemake(done, "-n", "outlines/hunza_2021.gpkg", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "data/hunza/2021/optical" in text
    assert "Sentinel-2" in text
    assert "Traceback" not in text


def test_feature_set_without_layer_is_reported(done: Path) -> None:
    """demo 2005 has no coherence: asking for optical_dem_sar says so in one line at DAG time,
    naming the missing input and where it goes."""
    proc = snakemake(
        done,
        "-n",
        "--cores",
        "2",
        "results/probability/demo_2005/rf_optical_dem_sar.tif",
        check=False,
    )
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("glaciermap: error:")]
    assert len(err) == 1 and "coherence" in err[0] and "demo/2005/sar/" in err[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("drop", "add", "where", "key"),
    [
        ("", "polygonise: {smooth_m: 3}\n", "config top level: ", "polygonise"),
        (
            "inference:\n  window: 64\n",
            "inference: {window: 64, overlpa: 16}\n",
            "config inference: ",
            "overlpa",
        ),
    ],
)
def test_config_typo_is_one_line(tmp_path: Path, drop: str, add: str, where: str, key: str) -> None:
    """A typo'd key, top level or inside a section, stops the run at parse time with one line
    naming the key (not a dump of the whole configuration)."""
    wd = make_workdir(tmp_path)
    cfg = wd / "config/config.yaml"
    text = cfg.read_text()
    if drop:
        start = text.index(drop)
        end = text.index("\n\n", start)
        text = text[:start] + text[end:]
    cfg.write_text(text + add)
    proc = snakemake(wd, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("glaciermap: error:")]
    assert len(err) == 1 and where in err[0] and key in err[0], proc.stderr
    assert "Traceback" not in proc.stderr and "'regions'" not in proc.stderr


PARSE_PROBE = """
import atexit, sys
heavy = ("torch", "sklearn", "glaciermap.synthetic.world", "glaciermap.synthetic.demo",
         "rasterio.warp", "glaciermap.ml.train")
atexit.register(lambda: print("IMPORTED", [m for m in heavy if m in sys.modules], file=sys.stderr))
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def test_parsing_the_workflow_imports_nothing_heavy(tmp_path: Path) -> None:
    """Building the DAG (demo regions included) imports neither torch nor scikit-learn, nor
    the demo world's physics, nor raster warping: the input catalogue lists files only."""
    import subprocess
    import sys

    from workflow_helpers import REPO

    wd = make_workdir(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, "-s", str(REPO / "Snakefile"), "-d", str(wd), "-n"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORTED")]
    assert line == ["IMPORTED []"], proc.stderr[-3000:]


def test_benchmark_test_on_a_training_member_is_refused(tmp_path: Path) -> None:
    """Scoring the table on a region/year the models were trained on is not held out: one
    line at DAG time."""
    import yaml

    wd = make_workdir(tmp_path)
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    cfg["benchmark"]["test_on"] = "demo-train_2015"
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(wd, "-n", "--cores", "1", "tables/demo_benchmark.md", check=False)
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("glaciermap: error:")]
    assert len(err) == 1 and "demo-train_2015" in err[0] and "test_on" in err[0], proc.stderr


def test_report_has_maps_curves_and_table(done: Path) -> None:
    for rel in (
        "results/quicklooks/demo_2021/false_colour.png",
        "results/quicklooks/demo_2021/coherence.png",
        "results/models/demo/unet_optical_dem_sar/history.png",
        "tables/demo_benchmark.md",
    ):
        assert (done / rel).stat().st_size > 0, rel
    table = (done / "tables/demo_benchmark.md").read_text()
    assert "| U-Net | Opt+DEM+SAR |" in table and "| RF | Opt+DEM+SAR |" in table
    # benchmark: test_on: the table is scored on the held-out world, not the training world's
    assert "held-out region/year demo_2021" in table
    held_out = json.loads((done / "results/eval/demo_2021/unet_optical_dem_sar.json").read_text())
    assert f"{held_out['miou']:.3f}".lstrip("0") in table
    snakemake(done, "--report", "report.html")
    html = (done / "report.html").read_text(errors="replace")
    for name in (
        "false_colour.png",
        "probability.png",
        "backscatter.png",
        "elevation.png",
        "history.png",
        "demo_benchmark.csv",
    ):
        assert name in html, name


def test_coherence_from_slc_pairs_through_the_workflow(tmp_path: Path) -> None:
    """A real-data region whose sar/ folder holds co-registered SLCs: the workflow estimates
    the coherence of each consecutive pair, then stacks them."""
    import numpy as np
    import yaml
    from affine import Affine

    sar = tmp_path / "data/slcr/2021/sar"
    sar.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = (rng.standard_normal((120, 120)) + 1j * rng.standard_normal((120, 120))) / np.sqrt(2)
    prof = {
        "driver": "GTiff",
        "width": 120,
        "height": 120,
        "count": 1,
        "dtype": "complex64",
        "crs": "EPSG:32643",
        "transform": Affine(20, 0, 450000, 0, -20, 4020000),
    }
    for k, date in enumerate(("20210806", "20210818", "20210830")):
        noise = (rng.standard_normal((120, 120)) + 1j * rng.standard_normal((120, 120))) / np.sqrt(
            2
        )
        g = 0.9 - 0.2 * k  # coherence with the base image falls over time
        with rasterio.open(sar / f"S1A_IW_{date}_SLC.tif", "w", **prof) as dst:
            dst.write((g * base + np.sqrt(1 - g**2) * noise).astype(np.complex64), 1)
    cfg = {
        "data_dir": "data",
        "targets": [],
        "regions": {
            "slcr": {
                "crs": "EPSG:32643",
                "bounds": [450400, 4018000, 452000, 4019600],
                "resolution_m": 20,
                "years": [2021],
            }
        },
        "sar": {"slc_window": [7, 7]},
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(tmp_path, "results/sar/slcr_2021/coherence.vrt")
    assert jobs == {
        "region_grid": 1,
        "slc_coherence": 2,
        "sar_coherence_tile": 1,
        "sar_coherence": 1,
    }
    snakemake(tmp_path, "--cores", "2", "results/sar/slcr_2021/coherence.vrt")
    with rasterio.open(tmp_path / "results/sar/slcr_2021/slc/20210806_20210818_corr.tif") as src:
        pair1 = np.nanmean(src.read(1))
    with rasterio.open(tmp_path / "results/sar/slcr_2021/coherence.vrt") as src:
        stacked = np.nanmean(src.read(1))
    assert 0.6 < pair1 < 0.95 and 0.3 < stacked < pair1


def test_summary_prints_miou_beside_the_trivial_score(done: Path) -> None:
    """What `make demo` ends with: outlines, metrics with mIoU, and the all-glacier score."""
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "glaciermap")
    proc = subprocess.run([exe, "summary", "demo_2021"], cwd=done, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "miou=" in proc.stdout and "iou_background=" in proc.stdout
    assert "everything-is-glacier would score mIoU" in proc.stdout


def test_every_job_gets_a_bounded_gdal_cache(done: Path) -> None:
    """GDAL's default block cache (5 % of RAM) made a job's peak memory depend on the node;
    every job runs with processing: gdal_cache_mb (512 MB) instead."""
    logs = [p for p in (done / "logs").rglob("*.log") if "benchmarks" not in p.parts]
    assert len(logs) > 10
    said = [p for p in logs if "GDAL block cache: 512 MB" in p.read_text(errors="replace")]
    assert len(said) > 0.8 * len(logs), [str(p) for p in logs if p not in said][:5]
