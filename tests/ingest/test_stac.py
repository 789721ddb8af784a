"""STAC acquisition against a local static STAC API (tests/ingest/stac_server.py): search and
pinning, downloads the input catalogue and the readers take, resumption, checksums, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.io import MemoryFile

from glaciermap.core.errors import InputDataError, MissingInputError
from glaciermap.ingest import stac
from glaciermap.ingest.catalog import InputCatalog, _listing
from glaciermap.ingest.optical import discover_scenes, scene_reflectance

sys.path.insert(0, str(Path(__file__).parent))
from stac_server import StacServer, free_port, sha256_multihash

X0, Y0 = 455000.0, 4040200.0  # UTM 43N, in the Hunza basin
WINDOW = "2021-08-01/2021-09-30"
S2_RADIOMETRY = {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}


def _tif(data: np.ndarray, res: float, nodata: float | None = 0) -> bytes:
    """A small GeoTIFF (one band) at ``X0, Y0`` in EPSG:32643, as bytes."""
    with MemoryFile() as mem:
        with mem.open(
            driver="GTiff",
            width=data.shape[1],
            height=data.shape[0],
            count=1,
            dtype=data.dtype,
            crs="EPSG:32643",
            transform=Affine(res, 0.0, X0, 0.0, -res, Y0),
            nodata=nodata,
        ) as dst:
            dst.write(data, 1)
        return bytes(mem.read())


@pytest.fixture(scope="module")
def rasters() -> dict[str, bytes]:
    """Band files: S2 bands at 10/20 m (DN 2000 + 100 k, blue has one DN-0 pixel), SCL with a
    cloudy 20 m pixel, generic 4-band files, SAR VV/VH, a DEM."""
    out = {}
    for k, (band, res) in enumerate(
        [("B02", 10), ("B03", 10), ("B04", 10), ("B08", 10), ("B11", 20), ("B12", 20)]
    ):
        n = 200 // res
        dn = np.full((n, n), 2000 + 100 * k, dtype=np.uint16)
        if band == "B02":
            dn[0, 0] = 0
        out[band] = _tif(dn, res)
    scl = np.full((10, 10), 4, dtype=np.uint8)
    scl[5, 5] = 9  # cloud, high probability
    out["SCL"] = _tif(scl, 20)
    for k, name in enumerate(["blue", "green", "red", "nir"]):
        dn = np.full((20, 20), 1000 + 500 * k, dtype=np.uint16)
        dn[1, 1] = 65535
        out[f"g_{name}"] = _tif(dn, 10, nodata=None)
    out["vv"] = _tif(np.full((20, 20), 0.05, dtype=np.float32), 10, nodata=None)
    out["vh"] = _tif(np.full((20, 20), 0.01, dtype=np.float32), 10, nodata=None)
    out["dem"] = _tif(np.full((20, 20), 4200.0, dtype=np.float32), 10, nodata=None)
    return out


S2_KEYS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11"}
S2_KEYS |= {"swir22": "B12", "scl": "SCL"}


def _asset(srv: StacServer, name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "href": srv.add_asset(name, data),
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "file:size": len(data),
        "file:checksum": sha256_multihash(data),
        **extra,
    }


def _s2_item(
    srv: StacServer,
    rasters: dict[str, bytes],
    item_id: str,
    when: str,
    cloud: float,
    bbox: list[float] | None = None,
) -> None:
    assets = {}
    for key, band in S2_KEYS.items():
        extra: dict[str, Any] = {"gsd": 10 if band in ("B02", "B03", "B04", "B08") else 20}
        extra["raster:bands"] = [{"nodata": 0}] if band == "SCL" else [S2_RADIOMETRY]
        assets[key] = _asset(srv, f"{item_id}/{band}.tif", rasters[band], **extra)
    assets["thumbnail"] = {"href": f"{srv.url}/assets/none.jpg", "roles": ["thumbnail"]}
    srv.item(
        item_id,
        "sentinel-2-l2a",
        when,
        bbox or [74.0, 36.0, 75.2, 37.0],
        assets,
        **{
            "eo:cloud_cover": cloud,
            "platform": "sentinel-2b",
            "mgrs:utm_zone": 43,
            "mgrs:latitude_band": "S",
            "mgrs:grid_square": "DV",
        },
    )


@pytest.fixture
def server(rasters: dict[str, bytes]) -> Iterator[StacServer]:
    with StacServer() as srv:
        # Inserted out of order: the selection must not depend on the server's order.
        _s2_item(srv, rasters, "S2B_43SDV_20210820_0_L2A", "2021-08-20T05:56:40Z", 12.0)
        _s2_item(srv, rasters, "S2A_43SDV_20210815_0_L2A", "2021-08-15T05:56:32Z", 31.0)
        _s2_item(srv, rasters, "S2B_43SDV_20210825_1_L2A", "2021-08-25T05:56:35Z", 3.0)
        _s2_item(srv, rasters, "S2B_43SDV_20210825_0_L2A", "2021-08-25T05:56:35Z", 3.0)
        _s2_item(srv, rasters, "S2A_43SDV_20210630_0_L2A", "2021-06-30T05:56:35Z", 0.0)
        _s2_item(
            srv,
            rasters,
            "S2A_44SKA_20210822_0_L2A",
            "2021-08-22T05:56:35Z",
            0.0,
            [80.0, 30.0, 81.0, 31.0],
        )
        rad = {"nodata": 65535, "data_type": "uint16", "scale": 0.0002, "offset": 0.01}
        gen = {
            name: _asset(
                srv,
                f"SS1_20210818/{name}.tif",
                rasters[f"g_{name}"],
                **{"raster:bands": [rad], "eo:bands": [{"common_name": name}]},
            )
            for name in ("blue", "green", "red", "nir")
        }
        srv.item(
            "SS1_20210818_0123",
            "smallsat-l3",
            "2021-08-18T06:00:00Z",
            [74.0, 36.0, 75.2, 37.0],
            gen,
            **{"eo:cloud_cover": 1.0, "platform": "ss-1"},
        )
        s1 = "S1A_IW_GRDH_1SDV_20210812T005959_20210812T010024_039280_04A3F5_rtc"
        srv.item(
            s1,
            "sentinel-1-rtc",
            "2021-08-12T01:00:00Z",
            [74.0, 36.0, 75.2, 37.0],
            {pol: _asset(srv, f"{s1}/{pol}.tif", rasters[pol]) for pol in ("vv", "vh")},
            platform="sentinel-1a",
        )
        dem = "Copernicus_DSM_COG_10_N36_00_E074_00"
        srv.item(
            dem,
            "cop-dem-glo-30",
            "2021-04-22T00:00:00Z",
            [74.0, 36.0, 75.0, 37.0],
            {"data": _asset(srv, f"{dem}/{dem}_DEM.tif", rasters["dem"])},
        )
        yield srv


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "data_dir": str(tmp_path / "data"),
        "regions": {
            "hunza": {
                "crs": "EPSG:32643",
                "bounds": [X0, Y0 - 200, X0 + 200, Y0],
                "resolution_m": 10,
                "years": [2021],
            }
        },
    }


def _search(srv: StacServer, config: dict[str, Any], **kw: Any) -> Any:
    args: dict[str, Any] = {"max_cloud": 20.0, "max_items": 2, "label": "hunza_2021 optical"}
    args |= kw
    return stac.search(
        srv.url,
        ["sentinel-2-l2a"],
        stac.region_bbox_lonlat(config, "hunza"),
        args.pop("window", WINDOW),
        limit=2,
        **args,
    )


def test_search_is_deterministic_and_the_pin_byte_stable(
    server: StacServer, config: dict[str, Any], tmp_path: Path
) -> None:
    items = _search(server, config)
    # least cloud first, one item per acquisition (the _1_ reprocessing of 08-25 is the
    # same scene), cloud limit, window and bbox applied
    assert [it.id for it in items.items] == [
        "S2B_43SDV_20210825_0_L2A",
        "S2B_43SDV_20210820_0_L2A",
    ]
    pin = stac.write_items(items, tmp_path / "a.json")
    again = stac.write_items(_search(server, config), tmp_path / "b.json")
    assert pin.read_bytes() == again.read_bytes()
    assert json.loads(pin.read_text())["features"][0]["id"] == "S2B_43SDV_20210825_0_L2A"
    fewer = stac.write_items(_search(server, config, max_items=1), tmp_path / "c.json")
    assert fewer.read_bytes() != pin.read_bytes()
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary file


def test_download_is_catalogued_and_read_with_the_items_radiometry(
    server: StacServer, config: dict[str, Any], tmp_path: Path
) -> None:
    pin = stac.write_items(_search(server, config, max_items=1), tmp_path / "optical.json")
    dest = tmp_path / "data/hunza/2021/optical"
    files = stac.download(pin, dest, backoff_s=0.01, manifest=tmp_path / "optical.files.json")
    folder = dest / "S2B_43SDV_20210825_0_L2A"
    assert sorted(p.name for p in files) == sorted(
        [
            f"T43SDV_20210825T055635_{b}_{r}m.tif"
            for b, r in [
                ("B02", 10),
                ("B03", 10),
                ("B04", 10),
                ("B08", 10),
                ("B11", 20),
                ("B12", 20),
                ("SCL", 20),
            ]
        ]
        + ["MTD_MSIL2A.xml"]
    )
    assert all(p.parent == folder for p in files)
    manifest = json.loads((tmp_path / "optical.files.json").read_text())
    assert manifest["items"] == ["S2B_43SDV_20210825_0_L2A"] and len(manifest["files"]) == 8
    # an item of another sensor: separate band files + a .bands.yaml sidecar
    gen = stac.search(
        server.url, ["smallsat-l3"], stac.region_bbox_lonlat(config, "hunza"), WINDOW, max_cloud=20
    )
    stac.write_items(gen, tmp_path / "gen.json")
    stac.download(tmp_path / "gen.json", dest, backoff_s=0.01)
    assert not list(dest.glob(".*"))  # no hidden staging folder or part file left

    _listing.cache_clear()
    cat = InputCatalog(config)
    listed = cat.optical("hunza", 2021)
    assert isinstance(listed, list) and len(listed) == 8 + 5
    s2, generic = sorted(discover_scenes(listed), key=lambda s: s.generic)
    assert (s2.sensor, s2.qa_kind) == ("sentinel-2-l2a", "scl")
    assert s2.scale == pytest.approx(1e-4) and s2.offset == pytest.approx(-0.1)
    grid = cat.grid("hunza")
    refl = scene_reflectance(s2, grid)
    assert refl[0, 5, 5] == pytest.approx(2000 * 1e-4 - 0.1)  # blue
    assert refl[5, 5, 5] == pytest.approx(2500 * 1e-4 - 0.1)  # swir2 (B12, 20 m)
    assert np.isnan(refl[0, 0, 0])  # DN 0: missing
    assert np.isnan(refl[:, 10:12, 10:12]).all()  # SCL cloud
    assert (generic.sensor, generic.scale, generic.offset, generic.nodata) == (
        "ss-1",
        0.0002,
        0.01,
        65535.0,
    )
    g = scene_reflectance(generic, grid)
    assert g[3, 5, 5] == pytest.approx(2500 * 0.0002 + 0.01)
    assert np.isnan(g[:, 1, 1]).all()

    # a rerun finds every file present and verified: no asset is requested again
    before = len(server.requests)
    stac.download(pin, dest, backoff_s=0.01)
    assert not [r for r in server.requests[before:] if r[1].startswith("/assets/")]


def test_sar_and_dem_names_are_recognised(
    server: StacServer, config: dict[str, Any], tmp_path: Path
) -> None:
    bbox = stac.region_bbox_lonlat(config, "hunza")
    data = Path(config["data_dir"])
    sar = stac.write_items(
        stac.search(server.url, ["sentinel-1-rtc"], bbox, WINDOW), tmp_path / "sar.json"
    )
    stac.download(sar, data / "hunza/2021/sar", kind="sar", backoff_s=0.01)
    dem = stac.write_items(
        stac.search(server.url, ["cop-dem-glo-30"], bbox, None), tmp_path / "dem.json"
    )
    stac.download(dem, data / "dem", backoff_s=0.01)  # kind inferred: dem
    _listing.cache_clear()
    cat = InputCatalog(config)
    names = sorted(Path(p).name for p in cat.backscatter("hunza", 2021))
    s1 = "S1A_IW_GRDH_1SDV_20210812T005959_20210812T010024_039280_04A3F5_rtc"
    assert names == [f"{s1}_VH.tif", f"{s1}_VV.tif"]
    assert [Path(p).name for p in cat.dem("hunza")] == [  # type: ignore[union-attr]
        "Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif"
    ]
    with rasterio.open(data / "hunza/2021/sar" / f"{s1}_VV.tif") as src:
        assert src.read(1)[0, 0] == pytest.approx(0.05)


def _one_file_item(srv: StacServer, data: bytes, tmp_path: Path) -> tuple[Path, str]:
    dem = "Copernicus_DSM_COG_10_N37_00_E074_00"
    name = f"{dem}/{dem}_DEM.tif"
    srv.item(
        dem,
        "dem-test",
        "2021-04-22T00:00:00Z",
        [74.0, 37.0, 75.0, 38.0],
        {"data": _asset(srv, name, data)},
    )
    items = stac.search(srv.url, ["dem-test"], [74.2, 37.2, 74.3, 37.3], None)
    return stac.write_items(items, tmp_path / "one.json"), name


def test_interrupted_download_resumes_with_range(
    server: StacServer, rasters: dict[str, bytes], tmp_path: Path
) -> None:
    data = rasters["dem"]
    pin, name = _one_file_item(server, data, tmp_path)
    server.drop_after[name] = 300  # the first answer breaks off after 300 bytes
    (out,) = stac.download(pin, tmp_path / "dem", backoff_s=0.01)
    ranges = [r[2] for r in server.requests if r[1] == f"/assets/{name}"]
    assert ranges == [None, "bytes=300-"]
    assert out.read_bytes() == data
    assert stac.multihash(out) == sha256_multihash(data)
    assert not list(out.parent.glob(".*"))  # no part or lock file left


def test_full_disk_during_a_download_is_one_line_and_resumable(
    server: StacServer, rasters: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from glaciermap.core.errors import OutputError

    pin, _ = _one_file_item(server, rasters["dem"], tmp_path)
    real_open = Path.open

    class Full:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, data: bytes) -> int:
            self.fh.write(data[:100])  # 100 bytes fit, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_open(self: Path, mode: str = "r", *a: Any, **k: Any) -> Any:
        fh = real_open(self, mode, *a, **k)
        part = self.name.endswith(".part") and ("w" in mode or "a" in mode)
        return Full(fh) if part else fh

    monkeypatch.setattr(Path, "open", full_open)
    with pytest.raises(OutputError, match="disk is full") as err:
        stac.download(pin, tmp_path / "dem", retries=3, backoff_s=0.01)
    assert "\n" not in str(err.value)
    dem = tmp_path / "dem"
    assert not [p for p in dem.iterdir() if not p.name.startswith(".")]  # no final file
    monkeypatch.setattr(Path, "open", real_open)  # space freed: the download resumes
    (out,) = stac.download(pin, dem, backoff_s=0.01)
    assert out.read_bytes() == rasters["dem"]
    ranges = [r[2] for r in server.requests if r[1].endswith("_DEM.tif")]
    assert ranges[-1] == "bytes=100-", ranges


def test_5xx_answers_are_retried(
    server: StacServer, rasters: dict[str, bytes], tmp_path: Path
) -> None:
    pin, name = _one_file_item(server, rasters["dem"], tmp_path)
    server.fail_5xx[name] = 2
    (out,) = stac.download(pin, tmp_path / "dem", retries=3, backoff_s=0.01)
    assert out.read_bytes() == rasters["dem"]


def test_corrupt_asset_fails_in_one_line_and_leaves_no_file(
    server: StacServer, rasters: dict[str, bytes], tmp_path: Path
) -> None:
    pin, name = _one_file_item(server, rasters["dem"], tmp_path)
    server.corrupt.add(name)
    with pytest.raises(InputDataError) as err:
        stac.download(pin, tmp_path / "dem", retries=2, backoff_s=0.01)
    msg = str(err.value)
    assert "\n" not in msg and "checksum mismatch" in msg and "in 3 attempts" in msg
    assert "Copernicus_DSM_COG_10_N37_00_E074_00_DEM.tif" in msg
    assert [p.name for p in (tmp_path / "dem").iterdir() if not p.name.endswith(".lock")] == []


def test_no_item_in_the_window_says_what_to_change(
    server: StacServer, config: dict[str, Any]
) -> None:
    with pytest.raises(MissingInputError) as err:
        _search(server, config, window="2019-08-01/2019-09-30")
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("hunza_2021 optical", "2019-08-01", "eo:cloud_cover <= 20", "widen the date"):
        assert part in msg


def test_unreachable_api_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(stac.AcquisitionError) as err:
        stac.search(url, ["sentinel-2-l2a"], [74, 36, 75, 37], WINDOW, timeout=5)
    assert "\n" not in str(err.value) and "not reachable" in str(err.value)


def test_command_line(
    server: StacServer, config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bbox = ",".join(map(str, stac.region_bbox_lonlat(config, "hunza")))
    out = tmp_path / "results/stac/hunza_2021/sar.json"
    common = ["--api", server.url, "--collections", "sentinel-1-rtc", "--bbox", bbox]
    assert stac.main_acquire(["search", *common, "--datetime", WINDOW, "--out", str(out)]) == 0
    assert (
        stac.main_acquire(
            [
                "download",
                str(out),
                "--dest",
                str(tmp_path / "sar"),
                "--kind",
                "sar",
                "--manifest",
                str(tmp_path / "sar.files.json"),
            ]
        )
        == 0
    )
    assert len(json.loads((tmp_path / "sar.files.json").read_text())["files"]) == 2
    status = stac.main_acquire(
        [
            "search",
            *common,
            "--datetime",
            "2000-01-01/2000-02-01",
            "--label",
            "hunza_2000 sar",
            "--out",
            str(tmp_path / "none.json"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and err[-1].startswith("glaciermap: error: hunza_2000 sar: no STAC item")
    assert not (tmp_path / "none.json").exists()


def test_acquisition_request_from_the_config(config: dict[str, Any]) -> None:
    config["acquisition"] = {
        "sources": {"landsat": {"api": "http://x/stac", "max_items": 5}},
        "window": ["08-01", "09-15"],
    }
    config["regions"]["hunza"]["acquisition"] = {
        2005: {"optical": "landsat", "sar": None, "max_cloud": 40},
        "2021": {"start": "2021-07-15", "end": "2021-08-31"},
    }
    r2005 = stac.acquisition_request(config, "hunza", 2005, "optical")
    assert r2005 is not None
    assert (r2005["api"], r2005["collections"], r2005["max_items"]) == (
        "http://x/stac",
        ["landsat-c2-l2"],
        5,
    )
    assert (r2005["datetime"], r2005["max_cloud"]) == ("2005-08-01/2005-09-15", 40.0)
    assert stac.acquisition_request(config, "hunza", 2005, "sar") is None
    r2021 = stac.acquisition_request(config, "hunza", 2021, "optical")
    assert r2021 is not None and r2021["source"] == "sentinel-2"
    assert (r2021["datetime"], r2021["max_cloud"]) == ("2021-07-15/2021-08-31", 20.0)
    dem = stac.acquisition_request(config, "hunza", 2021, "dem")
    assert dem is not None and dem["datetime"] is None and dem["collections"] == ["cop-dem-glo-30"]


def test_multihash() -> None:
    assert stac.parse_multihash(sha256_multihash(b"abc")) == (
        "sha256",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    )
    assert stac.parse_multihash("d50110" + "00" * 16) == ("md5", "00" * 16)
    assert stac.parse_multihash("1b20" + "00" * 32) is None  # keccak-256: not checked
    with pytest.raises(InputDataError):
        stac.parse_multihash("1220abcd")


def _landsat_item(scale: float) -> dict[str, Any]:
    pid = "LC09_L2SP_148035_20210818_20210819_02_T1"
    base = f"https://example.invalid/landsat-c2/{pid}/{pid}"
    bands = {"blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir08": "SR_B5"}
    bands |= {"swir16": "SR_B6", "swir22": "SR_B7", "qa_pixel": "QA_PIXEL", "coastal": "SR_B1"}
    rad = [{"nodata": 0, "scale": scale, "offset": -0.2}]
    return {
        "id": "LC09_L2SP_148035_20210818_02_T1",
        "collection": "landsat-c2-l2",
        "properties": {"datetime": "2021-08-18T05:40:00Z", "platform": "landsat-9"},
        "assets": {
            k: {"href": f"{base}_{b}.TIF", **({"raster:bands": rad} if b != "QA_PIXEL" else {})}
            for k, b in bands.items()
        },
    }


def test_landsat_names_and_fallback_to_a_sidecar() -> None:
    lay = stac.item_layout(_landsat_item(2.75e-5))
    pid = "LC09_L2SP_148035_20210818_20210819_02_T1"
    assert sorted(f.name for f in lay.files) == sorted(
        f"{pid}_{b}.TIF" for b in ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7", "QA_PIXEL")
    )
    assert lay.extras == {}  # the reader applies the Level-2 scale/offset itself
    other = stac.item_layout(_landsat_item(1e-4))  # not the reader's radiometry: a sidecar
    (sidecar,) = other.extras
    text = other.extras[sidecar]
    assert sidecar.endswith(".bands.yaml") and "scale: 0.0001" in text and "offset: -0.2" in text


def test_boa_offset_already_applied_gives_offset_zero() -> None:
    assets = {
        key: {"href": f"https://example.invalid/{band}.tif", "raster:bands": [S2_RADIOMETRY]}
        for key, band in S2_KEYS.items()
    }
    item = {
        "id": "S2B_43SDV_20220825_0_L2A",
        "collection": "sentinel-2-l2a",
        "properties": {
            "datetime": "2022-08-25T05:56:35Z",
            "platform": "sentinel-2b",
            "s2:mgrs_tile": "43SDV",
            "earthsearch:boa_offset_applied": True,
        },
        "assets": assets,
    }
    lay = stac.item_layout(item)
    assert '<BOA_ADD_OFFSET band_id="0">0</BOA_ADD_OFFSET>' in lay.extras["MTD_MSIL2A.xml"]
    item["properties"]["earthsearch:boa_offset_applied"] = False
    lay = stac.item_layout(item)
    assert '<BOA_ADD_OFFSET band_id="0">-1000</BOA_ADD_OFFSET>' in lay.extras["MTD_MSIL2A.xml"]


def test_assets_signed_with_a_sas_token(
    server: StacServer, rasters: dict[str, bytes], tmp_path: Path
) -> None:
    """A source with ``sign:`` (Planetary Computer's Landsat and Sentinel-1 RTC): each href is
    read with the collection's anonymous SAS token, also when a broken-off download resumes;
    the pinned items keep the unsigned href; without the token the host refuses (one line
    naming sign:), and a token service that does not know the collection is one line too."""
    data = rasters["dem"]
    name = "signed/Copernicus_DSM_COG_10_N38_00_E074_00_DEM.tif"
    server.item(
        "Copernicus_DSM_COG_10_N38_00_E074_00",
        "signed-test",
        "2021-04-22T00:00:00Z",
        [74.0, 38.0, 75.0, 39.0],
        {"data": _asset(server, name, data)},
    )
    server.sas_tokens["signed-test"] = "st=2021&se=2099&sig=abc%2Bdef"
    server.signed[name] = "signed-test"
    items = stac.search(server.url, ["signed-test"], [74.2, 38.2, 74.3, 38.3], None)
    pin = stac.write_items(items, tmp_path / "signed.json")
    assert "sig=" not in pin.read_text()
    with pytest.raises(stac.AcquisitionError, match=r"access refused \(HTTP 403\).*sign:"):
        stac.download(pin, tmp_path / "unsigned", backoff_s=0.01)
    assert not list((tmp_path / "unsigned").glob("*.tif"))
    server.drop_after[name] = 300
    (out,) = stac.download(pin, tmp_path / "dem", backoff_s=0.01, sign=f"{server.url}/sas")
    assert out.read_bytes() == data
    ranges = [r[2] for r in server.requests if r[1] == f"/assets/{name}"]
    assert ranges[-2:] == [None, "bytes=300-"]  # resumed, signed again
    server.sas_tokens.pop("signed-test")
    with pytest.raises(stac.AcquisitionError, match="no SAS token for collection 'signed-test'"):
        stac.download(pin, tmp_path / "again", backoff_s=0.01, sign=f"{server.url}/sas")


def test_planetary_computer_sources_are_signed(config: dict[str, Any]) -> None:
    """The built-in landsat and sentinel-1 sources sign with Planetary Computer's token API,
    and the workflow's download command passes it on; Earth Search sources do not sign."""
    cfg = {**config, "regions": {"hunza": {**config["regions"]["hunza"]}}}
    cfg["regions"]["hunza"]["acquisition"] = {2021: {"optical": "landsat"}}
    assert stac.acquisition_request(cfg, "hunza", 2021, "optical")["sign"] == (  # type: ignore[index]
        stac.PLANETARY_COMPUTER_SAS
    )
    assert "--sign " + stac.PLANETARY_COMPUTER_SAS in stac.download_cli_args(
        cfg, "hunza", 2021, "sar", "data"
    )
    assert stac.acquisition_request(config, "hunza", 2021, "dem")["sign"] is None  # type: ignore[index]
    assert "--sign" not in stac.download_cli_args(config, "hunza", 2021, "dem", "data")
