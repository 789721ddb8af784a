"""`download: true` through the workflow: `snakemake acquire` searches a local static STAC API
(tests/ingest/stac_server.py, on 127.0.0.1; nothing reaches the internet), pins the items and
downloads them into the data layout. Then the optical composite and the terrain are built from
the downloaded files, and a second `acquire` has nothing to do."""

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


def _rasters() -> dict[str, bytes]:
    out = {}
    for k, (band, res) in enumerate(
        [("B02", 10), ("B03", 10), ("B04", 10), ("B08", 10), ("B11", 20), ("B12", 20)]
    ):
        out[band] = _tif(np.full((200 // res, 200 // res), 2000 + 500 * k, np.uint16), res)
    out["SCL"] = _tif(np.full((10, 10), 5, np.uint8), 20)  # bare ground, no cloud
    out["dem"] = _tif(np.full((20, 20), 4200.0, np.float32), 10, nodata=None)
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


def test_acquire_then_build_from_the_downloads(server: StacServer, tmp_path: Path) -> None:
    cfg = {
        "download": True,
        "acquisition": {
            "sources": {"sentinel-2": {"api": server.url}, "copernicus-dem": {"api": server.url}},
            "sar": None,
        },
        "regions": {
            "hunza": {
                "crs": "EPSG:32643",
                "bounds": [X0, Y0 - 200, X0 + 200, Y0],
                "resolution_m": 10,
                "years": [2021],
                "acquisition": {2021: {"start": "2021-08-01", "end": "2021-09-30"}},
            }
        },
        "targets": [],
        "datasets": {},
        "model": {"dataset": "none", "arch": "rf", "featureset": "optical_dem"},
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    # Before the download the inputs are missing; the line says how to get them.
    proc = snakemake(tmp_path, "-n", "--cores", "1", "results/optical/hunza_2021.vrt", check=False)
    assert "run `snakemake --cores 4 acquire` first" in proc.stderr, proc.stderr[-2000:]
    snakemake(tmp_path, "--cores", "1", "acquire")
    pinned = json.loads((tmp_path / "results/stac/hunza_2021/optical.json").read_text())
    # The June scene is outside the window: only the August one is pinned and downloaded.
    assert [f["id"] for f in pinned["features"]] == ["S2B_43SDV_20210820_0_L2A"]
    assert not (tmp_path / "results/stac/hunza_2021/sar.json").exists()  # sar: null
    assert planned_jobs(tmp_path, "acquire") == {}
    snakemake(
        tmp_path, "--cores", "1", "results/optical/hunza_2021.vrt", "results/terrain/hunza/dem.vrt"
    )
    with rasterio.open(tmp_path / "results/optical/hunza_2021.vrt") as src:
        blue = src.read(src.descriptions.index("blue") + 1)
        assert src.tags()["ACQUISITION_DATES"] == "2021-08-20"
    assert np.allclose(blue, 2000 * 1e-4 - 0.1, atol=1e-4)  # the items' scale and offset
    with rasterio.open(tmp_path / "results/terrain/hunza/dem.vrt") as src:
        assert np.allclose(src.read(1), 4200.0)
