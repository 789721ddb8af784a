from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Polygon, box

from glaciermap.core.errors import InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.labels import rasterize_inventory, read_inventory
from glaciermap.products.metrics import confusion_metrics


def test_confusion_metrics_known_case() -> None:
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    pred = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    m = confusion_metrics(pred, truth)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["iou"] == pytest.approx(2 / 4) and m["f1"] == pytest.approx(2 / 3)
    valid = np.array([1, 1, 1, 0, 1, 1, 1, 1], bool)  # ignoring the false positive
    assert confusion_metrics(pred, truth, valid)["precision"] == 1.0


def test_invalid_geometry_is_repaired(tmp_path: Path) -> None:
    bowtie = Polygon([(0, 0), (100, 100), (100, 0), (0, 100), (0, 0)])
    path = tmp_path / "inv.gpkg"
    gpd.GeoDataFrame({"RGIId": ["a"]}, geometry=[bowtie], crs="EPSG:32643").to_file(path)
    inv = read_inventory(path)
    assert inv.geometry.is_valid.all()
    assert inv.geometry.area.sum() == pytest.approx(5000, rel=1e-6)
    assert set(inv["inventory_id"]) == {"a"}


def test_inventory_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError):
        read_inventory(tmp_path / "none.gpkg")
    junk = tmp_path / "junk.gpkg"
    junk.write_text("not a geopackage")
    with pytest.raises(InputDataError):
        read_inventory(junk)


def test_rasterized_square_area() -> None:
    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 1000, 1000), 10)
    path_poly = box(103, 103, 703, 503)  # no pixel centre on an edge
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "sq.gpkg"
        gpd.GeoDataFrame(geometry=[path_poly], crs="EPSG:32643").to_file(p)
        lab = rasterize_inventory(p, g)
    assert lab.sum() * 100 == pytest.approx(path_poly.area, rel=0.01)


@pytest.mark.parametrize(
    ("rel", "crs"),
    [
        ("hintereisferner/rgi7g_hef_complex.gpkg", "EPSG:32632"),
        ("oetztal/rgi_oetztal.gpkg", "EPSG:32632"),
        ("baltoro/baltoro_wgs84.gpkg", "EPSG:32643"),
    ],
)
def test_real_inventory_area_within_one_percent(shared_data: Path, rel: str, crs: str) -> None:
    """Real RGI/GLIMS outlines rasterized at 10 m keep their vector area within 1 %."""
    path = shared_data / "oggm" / rel
    inv = read_inventory(path, crs)
    left, bottom, right, top = inv.total_bounds
    g = RegionGrid.from_bounds(crs, (left - 100, bottom - 100, right + 100, top + 100), 10)
    lab = rasterize_inventory(path, g)
    vector_km2 = inv.geometry.union_all().area / 1e6
    raster_km2 = lab.sum() * 100 / 1e6
    assert raster_km2 == pytest.approx(vector_km2, rel=0.01)


def test_block_wise_labels_equal_whole_grid(tmp_path: Path) -> None:
    """build_labels burns block by block: the same pixels as one whole-grid rasterization,
    for polygons crossing block edges, whatever the block size."""
    from glaciermap.core.io import read_bands
    from glaciermap.ingest.labels import build_labels

    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 3000, 2000), 10)
    g.save(tmp_path / "g.json")
    polys = [Polygon([(100, 100), (2900, 300), (1500, 1900)]), box(1995, 5, 2705, 1305)]
    gpd.GeoDataFrame(geometry=polys, crs="EPSG:32643").to_file(tmp_path / "inv.gpkg")
    whole = rasterize_inventory(tmp_path / "inv.gpkg", g)
    for block in (2048, 64, 37):
        build_labels(
            tmp_path / "inv.gpkg", tmp_path / "g.json", tmp_path / f"l{block}.tif", block=block
        )
        np.testing.assert_array_equal(read_bands(tmp_path / f"l{block}.tif")[0][0], whole)
    assert whole.sum() > 0


def test_outline_metrics_block_wise_equal_whole_grid(tmp_path: Path) -> None:
    """evaluate_outlines counts block by block: the counts of one whole-grid comparison."""
    from glaciermap.core.grid import write_raster
    from glaciermap.ml.features import VALID
    from glaciermap.products.metrics import evaluate_outlines

    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 3000, 2000), 10)
    g.save(tmp_path / "g.json")
    gpd.GeoDataFrame(
        geometry=[Polygon([(100, 100), (2900, 300), (1500, 1900)])], crs="EPSG:32643"
    ).to_file(tmp_path / "out.gpkg")
    truth = np.zeros(g.shape, np.uint8)
    truth[50:150, 20:260] = 1
    valid = np.ones((1, *g.shape), np.float32)
    valid[0, :, :15] = 0
    write_raster(tmp_path / "l.tif", truth, g, ["glacier"])
    write_raster(tmp_path / "f.tif", valid, g, [VALID])
    pred = rasterize_inventory(tmp_path / "out.gpkg", g) > 0
    expected = confusion_metrics(pred, truth > 0, valid[0] > 0)
    for block in (2048, 48):
        m = evaluate_outlines(
            tmp_path / "out.gpkg",
            tmp_path / "l.tif",
            tmp_path / "f.tif",
            tmp_path / "g.json",
            tmp_path / f"m{block}.json",
            block=block,
        )
        assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (
            expected["tp"],
            expected["fp"],
            expected["fn"],
            expected["tn"],
        )


@pytest.mark.parametrize("case", ["empty", "points", "elsewhere"])
def test_an_inventory_without_glaciers_in_the_region_is_an_error(tmp_path: Path, case: str) -> None:
    """Empty, points-only or out-of-region inventories used to give all-zero labels (IoU 0,
    NaN metrics) silently; now one line naming the file, and no label raster."""
    from shapely.geometry import Point

    from glaciermap.ingest.labels import build_labels

    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 3000, 2000), 10)
    g.save(tmp_path / "g.json")
    geoms = {
        "empty": [],
        "points": [Point(500, 500), Point(1000, 1000)],
        "elsewhere": [box(50_000, 50_000, 51_000, 51_000)],
    }[case]
    inv = tmp_path / f"{case}.gpkg"
    gpd.GeoDataFrame(geometry=geoms, crs="EPSG:32643").to_file(inv)
    with pytest.raises(
        InputDataError, match=rf"{case}.gpkg: no glacier polygon .* lies in the region"
    ):
        build_labels(inv, tmp_path / "g.json", tmp_path / "l.tif")
    assert not (tmp_path / "l.tif").exists()
    # debris polygons may be absent: a debris-free region is real
    build_labels(inv, tmp_path / "g.json", tmp_path / "d.tif", band="debris")
    assert (tmp_path / "d.tif").exists()


def test_no_truth_is_a_status_and_the_json_stays_valid(tmp_path: Path) -> None:
    """Truth without glacier (an empty or out-of-region inventory): status "no truth", the
    undefined glacier scores are null (JSON has no NaN), the table shows them as "–"."""
    from glaciermap.core.io import write_json
    from glaciermap.products.metrics import metrics_from_counts

    m = metrics_from_counts(tp=0, fp=5, fn=0, tn=95)
    assert m["status"] == "no truth" and math.isnan(m["recall"])
    assert metrics_from_counts(tp=3, fp=1, fn=1, tn=95)["status"] == "scored"
    write_json(m, tmp_path / "m.json")

    def no_nan(token: str) -> None:
        raise AssertionError(f"invalid JSON constant {token}")

    back = json.loads((tmp_path / "m.json").read_text(), parse_constant=no_nan)
    assert back["recall"] is None and back["iou"] == 0.0 and back["status"] == "no truth"


@pytest.mark.parametrize("file_crs", ["EPSG:4326", "EPSG:32643", "EPSG:3857"])
def test_inventory_read_for_a_region_takes_its_glaciers_only(tmp_path: Path, file_crs: str) -> None:
    """A continental file (glaciers far away) gives the region the same labels as a file of
    the region's glaciers alone; only the polygons near the region are read, in file order."""
    grid = RegionGrid.from_bounds("EPSG:32643", (400_000, 4_000_000, 402_000, 4_001_000), 10)
    near = [
        box(400_100, 4_000_100, 400_600, 4_000_500),
        box(401_500, 4_000_800, 403_000, 4_002_000),
    ]
    far = [box(400_100 + 30_000 * k, 4_100_000, 400_600 + 30_000 * k, 4_100_500) for k in range(50)]
    ids = [f"far{k}" for k in range(25)] + ["a"] + [f"far{k}" for k in range(25, 50)] + ["b"]
    geoms = far[:25] + near[:1] + far[25:] + near[1:]
    big, small = tmp_path / "big.gpkg", tmp_path / "small.gpkg"
    gpd.GeoDataFrame({"RGIId": ids}, geometry=geoms, crs=grid.crs).to_crs(file_crs).to_file(big)
    gpd.GeoDataFrame({"RGIId": ["a", "b"]}, geometry=near, crs=grid.crs).to_crs(file_crs).to_file(
        small
    )
    got = read_inventory(big, grid.crs, grid.bounds)
    assert got["inventory_id"].tolist() == ["a", "b"]
    assert len(read_inventory(big, grid.crs)) == 52  # no bounds: the whole file
    assert np.array_equal(rasterize_inventory(big, grid), rasterize_inventory(small, grid))


def test_inventory_of_a_region_across_the_antimeridian(tmp_path: Path) -> None:
    """A UTM 60 region over 180 degrees reads its glaciers on both sides from a lon/lat file
    (the enclosing box is two boxes there), and not those elsewhere."""
    grid = RegionGrid.from_bounds("EPSG:32660", (600_000, 7_200_000, 700_000, 7_260_000), 1000)
    near = [
        box(610_000, 7_210_000, 620_000, 7_220_000),
        box(680_000, 7_240_000, 690_000, 7_250_000),
    ]
    lonlat = gpd.GeoSeries(near, crs=grid.crs).to_crs("EPSG:4326")
    assert lonlat.bounds["minx"].iloc[0] > 0 > lonlat.bounds["minx"].iloc[1]  # both sides
    far = gpd.GeoSeries([box(10, 45, 11, 46)], crs="EPSG:4326")
    inv = tmp_path / "inv.gpkg"
    gpd.GeoDataFrame(
        {"RGIId": ["east", "far", "west"]},
        geometry=[lonlat.iloc[0], far.iloc[0], lonlat.iloc[1]],
        crs="EPSG:4326",
    ).to_file(inv)
    assert read_inventory(inv, grid.crs, grid.bounds)["inventory_id"].tolist() == ["east", "west"]
    assert rasterize_inventory(inv, grid).sum() == 200  # two 10 x 10 km glaciers at 1 km
