"""The GeoPackage writer on sqlite3: what GDAL (pyogrio) reads back, and what it writes."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from glaciermap.core.gpkg import GeoPackageWriter, geometry_blobs, geopackage

COLUMNS = {"name": "TEXT", "area": "REAL", "year": "INTEGER"}


def _shapes(rng: np.random.Generator, n: int) -> list[shapely.Geometry]:
    out = []
    for _ in range(n):
        x, y = rng.uniform(400_000, 500_000, 2)
        box = shapely.box(x, y, x + 100, y + 50)
        if rng.random() < 0.3:
            box = box.difference(shapely.box(x + 10, y + 10, x + 20, y + 20))
        if rng.random() < 0.3:
            box = shapely.MultiPolygon([box, shapely.box(x + 200, y, x + 210, y + 10)])
        out.append(box)
    return out


def test_written_in_chunks_reads_back_as_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    geoms = _shapes(rng, 50)
    values = {
        "name": [f"g{k}" if k % 7 else None for k in range(50)],
        "area": rng.random(50).tolist(),
        "year": [2000 + k for k in range(50)],
    }
    dest = tmp_path / "out.gpkg"
    with geopackage(dest, "EPSG:32643") as w:
        w.add_layer("shapes", COLUMNS, "GEOMETRY")
        w.add_layer("none", {"a": "TEXT"}, "POLYGON")
        for a, b in ((0, 20), (20, 21), (21, 50)):
            w.append("shapes", geoms[a:b], {k: v[a:b] for k, v in values.items()})
    assert pyogrio.list_layers(dest).tolist() == [["shapes", "Unknown"], ["none", "Polygon"]]
    df = gpd.read_file(dest, layer="shapes")
    assert df.crs.to_epsg() == 32643
    assert list(df.columns) == [*COLUMNS, "geometry"]
    assert df["year"].dtype == np.int64
    assert [v if isinstance(v, str) else None for v in df["name"]] == values["name"]
    assert np.array_equal(df["area"].to_numpy(), values["area"])
    assert all(shapely.equals_exact(df.geometry.values, np.asarray(geoms, object), 0))
    info = pyogrio.read_info(dest, layer="shapes")
    assert info["features"] == 50
    total = shapely.total_bounds(np.asarray(geoms, object))
    assert np.allclose(info["total_bounds"], total)
    assert len(gpd.read_file(dest, layer="none")) == 0
    # the spatial index finds what the bounding boxes say
    x0, y0 = 450_000.0, 450_000.0
    query = shapely.box(x0, y0, x0 + 20_000, y0 + 20_000)
    hit = gpd.read_file(dest, layer="shapes", bbox=(x0, y0, x0 + 20_000, y0 + 20_000))
    expect = {v for g, v in zip(geoms, values["year"], strict=True) if g.intersects(query)}
    assert set(hit["year"]) >= expect
    with sqlite3.connect(dest) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert db.execute("SELECT count(*) FROM rtree_shapes_geom").fetchone()[0] == 50
        srs = {r[0] for r in db.execute("SELECT srs_id FROM gpkg_spatial_ref_sys")}
        assert srs == {-1, 0, 4326, 32643}  # the specification's three, and the layers'
        (ext,) = db.execute("SELECT * FROM gpkg_extensions WHERE table_name='shapes'")
        assert ext[2] == "gpkg_rtree_index"
        triggers = db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall()
        assert len(triggers) == 2 * 9


def test_blob_header_and_empty_geometries() -> None:
    geoms = np.asarray([shapely.box(1, 2, 3, 5), shapely.Polygon(), None], dtype=object)
    blobs, bounds = geometry_blobs(geoms, 32643)
    full, empty, none = blobs
    assert (
        full is not None
        and full[:4] == b"GP\x00\x03"
        and full[4:8] == (32643).to_bytes(4, "little")
    )
    assert np.frombuffer(full[8:40], "<f8").tolist() == [1, 3, 2, 5]  # minx maxx miny maxy
    assert shapely.from_wkb(full[40:]).equals(geoms[0])
    assert empty is not None and empty[3] == 0b0001_0001 and shapely.from_wkb(empty[8:]).is_empty
    assert none is None and np.isnan(bounds[1:]).all()


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out.gpkg"
    with pytest.raises(ValueError, match="columns"), geopackage(dest, "EPSG:4326") as w:
        w.add_layer("a", COLUMNS, "POLYGON")
        w.append("a", [shapely.box(0, 0, 1, 1)], {"name": ["x"]})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="bad columns"):
        GeoPackageWriter(tmp_path / "b.gpkg", "EPSG:4326").add_layer("a", {"x": "BLOB"})
    with pytest.raises(ValueError, match="bad columns"):  # SQLite's names ignore case
        GeoPackageWriter(tmp_path / "c.gpkg", "EPSG:4326").add_layer("a", {"FID": "TEXT"})
    with pytest.raises(FileExistsError):
        GeoPackageWriter(tmp_path / "b.gpkg", "EPSG:4326")


def test_a_crs_without_epsg_code(tmp_path: Path) -> None:
    crs = "+proj=aea +lat_1=44 +lat_2=48 +lat_0=46 +lon_0=10 +datum=WGS84 +units=m"
    dest = tmp_path / "out.gpkg"
    with geopackage(dest, crs) as w:
        w.add_layer("a", {"k": "INTEGER"}, "POLYGON")
        w.append("a", [shapely.box(0, 0, 1, 1)], {"k": [1]})
    df = gpd.read_file(dest)
    assert df.crs is not None and df.crs.to_epsg() is None
    assert df.crs.equals(gpd.GeoSeries([], crs=crs).crs)


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo (gdal-bin) absent")
def test_gdal_sees_the_spatial_index(tmp_path: Path) -> None:
    dest = tmp_path / "out.gpkg"
    with geopackage(dest, "EPSG:32643") as w:
        w.add_layer("a", {"k": "INTEGER"}, "POLYGON")
        w.append("a", [shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)], {"k": [1, 2]})
    sql = "SELECT HasSpatialIndex('a', 'geom') FROM a LIMIT 1"
    out = subprocess.run(
        ["ogrinfo", "-q", str(dest), "-sql", sql], capture_output=True, text=True, check=True
    )
    assert "HasSpatialIndex (Integer) = 1" in out.stdout
    out = subprocess.run(
        ["ogrinfo", "-q", str(dest), "a", "-spat", "4", "4", "7", "7"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "k (Integer64) = 2" in out.stdout and "k (Integer64) = 1" not in out.stdout
