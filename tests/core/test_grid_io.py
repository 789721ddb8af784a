from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from glaciermap.core.errors import (
    ConfigError,
    GlacierMapError,
    GridMismatchError,
    InputDataError,
    MissingInputError,
)
from glaciermap.core.grid import RegionGrid, check_same_grid, grid_of, write_raster
from glaciermap.core.io import atomic_path, band_names, read_bands, read_json


def test_errors_inherit_builtins() -> None:
    assert issubclass(InputDataError, ValueError) and issubclass(InputDataError, GlacierMapError)
    assert issubclass(MissingInputError, FileNotFoundError)
    assert issubclass(GridMismatchError, InputDataError)


def test_grid_from_bounds_and_roundtrip(tmp_path: Path) -> None:
    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 1005, 500), 10)
    assert g.shape == (50, 101)  # partial pixel at the right edge is kept
    assert g.bounds[0] == 0 and g.bounds[3] == 500
    g.save(tmp_path / "g.json")
    assert RegionGrid.load(tmp_path / "g.json").matches(g)


@pytest.mark.parametrize(
    ("crs", "bounds", "res"),
    [
        ("EPSG:32643", (0, 0, -1, 1), 10),
        ("EPSG:32643", (0, 0, 10, 10), 0),
        ("nonsense", (0, 0, 1, 1), 1),
    ],
)
def test_grid_rejects_bad_config(crs: str, bounds: tuple[float, ...], res: float) -> None:
    with pytest.raises(ConfigError):
        RegionGrid.from_bounds(crs, bounds, res)


def test_write_raster_names_and_grid_check(tmp_path: Path, grid: RegionGrid) -> None:
    data = np.arange(2 * grid.height * grid.width, dtype=np.float32).reshape(2, *grid.shape)
    path = tmp_path / "x.tif"
    write_raster(path, data, grid, ["a", "b"], nodata=np.nan)
    assert band_names(path) == ["a", "b"]
    arr, names = read_bands(path, ["b"])
    assert names == ["b"] and np.array_equal(arr[0], data[1])
    check_same_grid(grid, path)
    other = RegionGrid.from_bounds(grid.crs, (0, 0, 100, 100), 10)
    with pytest.raises(GridMismatchError, match="differs from the region grid"):
        check_same_grid(other, path)
    assert grid_of(path).matches(grid)
    with pytest.raises(InputDataError, match="has no band"):
        read_bands(path, ["c"])


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError):
        read_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputDataError, match="not valid JSON"):
        read_json(bad)


def test_write_raster_shape_mismatch(tmp_path: Path, grid: RegionGrid) -> None:
    with pytest.raises(GridMismatchError):
        write_raster(tmp_path / "y.tif", np.zeros((3, 3), np.float32), grid, ["a"])
    assert not (tmp_path / "y.tif").exists()


def test_reproject_file_matches_in_memory_warp(tmp_path: Path) -> None:
    import rasterio

    from glaciermap.core.reproject import reproject_file, reproject_to_grid

    src_grid = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 403000, 4003000), 10)
    rng = np.random.default_rng(0)
    data = rng.integers(1, 5000, size=(3, *src_grid.shape)).astype(np.uint16)
    src = tmp_path / "src.tif"
    write_raster(src, data, src_grid, ["a", "b", "c"], nodata=0)
    import rasterio.warp

    left, bottom, right, top = rasterio.warp.transform_bounds(
        "EPSG:32643", "EPSG:32644", 400500, 4000500, 402500, 4002500
    )
    target = RegionGrid.from_bounds("EPSG:32644", (left, bottom, right, top), 10)
    expected = reproject_to_grid(src, target, dst_dtype="uint16", dst_nodata=0)
    for block in (256, 4096):  # block size does not change the result
        out = tmp_path / f"out{block}.tif"
        reproject_file(src, target, out, block=block, threads=2)
        with rasterio.open(out) as o:
            got = o.read()
            assert o.dtypes[0] == "uint16" and o.nodata == 0
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        assert (got > 0).mean() > 0.5


def test_temp_files_of_killed_writers_are_removed_on_the_next_write(tmp_path: Path) -> None:
    dest = tmp_path / "features.tif"
    stale = [
        tmp_path / ".features.a1b2c3d4.tif",  # a killed GeoTIFF writer
        tmp_path / ".features.a1b2c3d4.tif.aux.xml",
        tmp_path / ".features.x_y_z_12.work.tif",  # a killed COG conversion
    ]
    keep = [
        tmp_path / ".features.a1b2c3d4.json",  # another output's temp
        tmp_path / ".features_2.a1b2c3d4.tif",
        tmp_path / "features.tif.bak",
    ]
    for f in stale + keep:
        f.write_text("x")
    with atomic_path(dest) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new"
    assert not any(f.exists() for f in stale)
    assert all(f.exists() for f in keep)


def test_torch_files_do_not_carry_their_temporary_name(tmp_path: Path) -> None:
    import torch

    from glaciermap.ml.train import save_torch

    outs = []
    for name in ("a", "b"):
        with atomic_path(tmp_path / name / "weights.pt") as tmp:
            save_torch({"w": torch.arange(4.0)}, tmp)
        outs.append((tmp_path / name / "weights.pt").read_bytes())
    assert outs[0] == outs[1]


def test_geopackages_are_byte_reproducible(tmp_path: Path) -> None:
    import time

    import geopandas as gpd
    from shapely.geometry import box

    from glaciermap.core.io import write_layers

    g = gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32643")
    write_layers(tmp_path / "a.gpkg", {"glaciers": g, "complexes": g})
    time.sleep(1.1)  # GDAL's own timestamp has a resolution of 1 s
    write_layers(tmp_path / "b.gpkg", {"glaciers": g, "complexes": g})
    assert (tmp_path / "a.gpkg").read_bytes() == (tmp_path / "b.gpkg").read_bytes()
    assert gpd.list_layers(tmp_path / "a.gpkg")["name"].tolist() == ["glaciers", "complexes"]


def test_libtiff_write_error_on_a_full_disk_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libtiff reports a full disk only as a write error (no "No space left"): with the file
    system (nearly) full it is an OutputError naming the file; otherwise it passes as is."""
    import shutil
    from collections import namedtuple

    from rasterio._err import CPLE_AppDefinedError

    from glaciermap.core.errors import OutputError

    dest = tmp_path / "probability.tif"
    dest.write_bytes(b"the previous product")

    def write_fails() -> None:
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"half")
            raise CPLE_AppDefinedError(1, 1, "TIFFAppendToStrip:Write error at scanline 512")

    with pytest.raises(CPLE_AppDefinedError):  # plenty of space: not our diagnosis to make
        write_fails()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**12, 10**12, 4096))
    with pytest.raises(OutputError, match="disk is full") as info:
        write_fails()
    assert str(dest) in str(info.value) and "\n" not in str(info.value)
    assert dest.read_bytes() == b"the previous product"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probability.tif"]


def test_gdal_cache_is_in_megabytes() -> None:
    from rasterio._env import get_gdal_config

    from glaciermap.core.io import gdal_cache

    with gdal_cache(64):  # rasterio.Env(GDAL_CACHEMAX=64) would be 64 bytes
        assert get_gdal_config("GDAL_CACHEMAX") == 64 << 20
    with rasterio.Env():  # nested in another Env (as inside an open dataset): set back
        before = get_gdal_config("GDAL_CACHEMAX")
        with gdal_cache(3):
            assert get_gdal_config("GDAL_CACHEMAX") == 3 << 20
        assert get_gdal_config("GDAL_CACHEMAX") == before != 3 << 20
