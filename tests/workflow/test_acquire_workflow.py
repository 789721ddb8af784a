"""`download: true` through the workflow: `snakemake acquire` searches a local static STAC API
(tests/ingest/stac_server.py, on 127.0.0.1; nothing reaches the internet), pins the items and
downloads them into the data layout; a second `acquire` has nothing to do. Then the usual run
goes from the downloaded files (and the user's inventory) to outlines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from workflow_helpers import planned_jobs, snakemake

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))
from stac_server import StacServer
from test_stac import X0, Y0, _asset, _s2_item, _tif

pytestmark = pytest.mark.workflow


SIZE_M = 400  # the region: 400 x 400 m, glacier (bright, dark in SWIR) in its west half


def _rasters() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    out = {}
    # reflectance DN (scale 1e-4, offset -0.1): snow/ice bright in the visible and NIR, dark
    # in the SWIR; rock flat and moderate
    ice = {"B02": 8000, "B03": 7800, "B04": 7600, "B08": 6500, "B11": 1300, "B12": 1200}
    rock = {"B02": 2300, "B03": 2500, "B04": 2600, "B08": 2800, "B11": 3300, "B12": 3300}
    for band in ice:
        res = 10 if band in ("B02", "B03", "B04", "B08") else 20
        n = SIZE_M // res
        data = np.where(np.arange(n) < n // 2, ice[band], rock[band]) + rng.normal(0, 60, (n, n))
        out[band] = _tif(data.astype(np.uint16), res)
    out["SCL"] = _tif(np.full((SIZE_M // 20,) * 2, 5, np.uint8), 20)  # no cloud
    out["dem"] = _tif(np.full((40, 40), 4200.0, np.float32), 10, nodata=None)
    return out


@pytest.fixture(scope="module")
def server() -> Iterator[StacServer]:
    rasters = _rasters()
    with StacServer() as srv:
        _s2_item(srv, rasters, "S2B_43SDV_20210820_0_L2A", "2021-08-20T05:56:40Z", 12.0)
        _s2_item(srv, rasters, "S2A_43SDV_20210630_0_L2A", "2021-06-30T05:56:35Z", 0.0)
        dem = "Copernicus_DSM_COG_10_N36_00_E074_00"
        srv.item(
            dem,
            "cop-dem-glo-30",
            "2021-04-22T00:00:00Z",
            [74.0, 36.0, 75.0, 37.0],
            {"data": _asset(srv, f"{dem}/{dem}_DEM.tif", rasters["dem"])},
        )
        yield srv


def _inventory(path: Path) -> None:
    """The user's glacier inventory (not served by STAC): the west half of the region."""
    import geopandas as gpd
    from shapely.geometry import box

    path.parent.mkdir(parents=True)
    glacier = box(X0, Y0 - SIZE_M, X0 + SIZE_M / 2, Y0)
    gpd.GeoDataFrame({"RGIId": ["RGI60-14.99999"]}, geometry=[glacier], crs=32643).to_file(path)


def test_acquire_then_build_from_the_downloads(server: StacServer, tmp_path: Path) -> None:
    """download: true from an empty data folder to outlines: `acquire`, then the usual run
    (two commands: the DAG of the second needs the downloaded files)."""
    cfg = {
        "download": True,
        "acquisition": {
            "sources": {"sentinel-2": {"api": server.url}, "copernicus-dem": {"api": server.url}},
            "sar": None,
        },
        "regions": {
            "hunza": {
                "crs": "EPSG:32643",
                "bounds": [X0, Y0 - SIZE_M, X0 + SIZE_M, Y0],
                "resolution_m": 10,
                "years": [2021],
                "acquisition": {2021: {"start": "2021-08-01", "end": "2021-09-30"}},
            }
        },
        "targets": [],
        "datasets": {
            "hunza": {"members": ["hunza_2021"], "tile_size": 16, "block_tiles": 1, "buffer_px": 2}
        },
        "model": {"dataset": "hunza", "arch": "rf", "featureset": "optical_dem"},
        "training": {"rf": {"tune": False, "n_estimators": 10}},
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    _inventory(tmp_path / "data/inventory/hunza_2021.gpkg")
    # Before the download the inputs are missing; the line says how to get them.
    proc = snakemake(tmp_path, "-n", "--cores", "1", "outlines/hunza_2021.gpkg", check=False)
    assert "run `snakemake --cores 4 acquire` first" in proc.stderr, proc.stderr[-2000:]
    snakemake(tmp_path, "--cores", "1", "acquire")
    pinned = json.loads((tmp_path / "results/stac/hunza_2021/optical.json").read_text())
    # The June scene is outside the window: only the August one is pinned and downloaded.
    assert [f["id"] for f in pinned["features"]] == ["S2B_43SDV_20210820_0_L2A"]
    assert not (tmp_path / "results/stac/hunza_2021/sar.json").exists()  # sar: null
    assert planned_jobs(tmp_path, "acquire") == {}
    snakemake(tmp_path, "--cores", "2", "outlines/hunza_2021.gpkg")
    with rasterio.open(tmp_path / "results/optical/hunza_2021.vrt") as src:
        blue = src.read(src.descriptions.index("blue") + 1)
        assert src.tags()["ACQUISITION_DATES"] == "2021-08-20"
    assert abs(np.median(blue[:, :20]) - (8000 * 1e-4 - 0.1)) < 0.01  # the items' scale, offset
    with rasterio.open(tmp_path / "results/terrain/hunza/dem.vrt") as src:
        assert np.allclose(src.read(1), 4200.0)
    import geopandas as gpd

    outlines = gpd.read_file(tmp_path / "outlines/hunza_2021.gpkg", layer="glaciers")
    area = (SIZE_M / 2) * SIZE_M / 1e6
    assert abs(outlines["area_km2"].sum() - area) < 0.1 * area, outlines
    assert set(outlines["acquisition_dates"]) == {"2021-08-20"}
