from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from glaciermap.core.errors import InputDataError
from glaciermap.products.changes import LAYERS, glacier_changes, write_changes

CRS = "EPSG:32643"


X0, Y0 = 500_000.0, 4_000_000.0  # on the UTM zone's central meridian: map area ~ true area


def _outlines(
    boxes: list[tuple[float, float, float, float]], ids: list[str], crs: str = CRS
) -> gpd.GeoDataFrame:
    geoms = [box(X0 + a, Y0 + b, X0 + c, Y0 + d) for a, b, c, d in boxes]
    return gpd.GeoDataFrame({"glacier_id": ids}, geometry=geoms, crs=CRS).to_crs(crs)


def test_retreat_split_new_and_vanished_glaciers() -> None:
    km = 1000.0
    first = _outlines(
        [(0, 0, 2 * km, 1 * km), (5 * km, 0, 6 * km, 1 * km)],  # 2 km2 and 1 km2
        ["a", "b"],
    )
    second = _outlines(
        [
            (0, 0, 0.5 * km, 1 * km),  # glacier a retreats and splits in two
            (1.0 * km, 0, 1.5 * km, 1 * km),
            (10 * km, 0, 10.5 * km, 0.5 * km),  # a new 0.25 km2 patch; b vanished
        ],
        ["1", "2", "3"],
    )
    layers, summary = glacier_changes(first, second, 2005, 2021)
    g = layers["glaciers"].set_index("complex_id")
    assert len(g) == 3
    a = g[g["glacier_ids_2005"] == "a"].iloc[0]
    assert a["area_2005_km2"] == pytest.approx(2.0, rel=2e-3)  # UTM scale 0.9996 at the CM
    assert a["area_2021_km2"] == pytest.approx(1.0, rel=2e-3)
    assert a["change_pct"] == pytest.approx(-50.0, abs=1e-6)
    assert a["rate_pct_per_yr"] == pytest.approx(-50.0 / 16, abs=1e-6)
    assert a["status"] == "retreat" and a["glacier_ids_2021"] == "1,2"
    assert set(g["status"]) == {"retreat", "vanished", "new"}
    assert layers["lost"]["area_km2"].sum() == pytest.approx(2.0, rel=2e-3)  # 1 of a + all b
    assert layers["gained"]["area_km2"].sum() == pytest.approx(0.25, rel=2e-3)
    assert summary.change_km2 == pytest.approx(1.25 - 3.0, rel=2e-3)
    assert "-58.3 %" in summary.line()


def test_written_geopackage_has_all_layers_and_geographic_input_is_projected(
    tmp_path: Path,
) -> None:
    first = _outlines([(0, 0, 1000, 1000)], ["a"], "EPSG:4326")
    second = _outlines([(0, 0, 1000, 800)], ["x"])
    p1, p2 = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    first.to_file(p1)
    second.to_file(p2)
    out = tmp_path / "changes" / "r_2005_2021.gpkg"
    summary = write_changes(p1, p2, out, 2005, 2021)
    assert summary.area1_km2 == pytest.approx(1.0, rel=1e-3)
    assert summary.change_pct == pytest.approx(-20.0, abs=0.1)
    import pyogrio

    assert {name for name, _ in pyogrio.list_layers(out)} == set(LAYERS)


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    ok = tmp_path / "ok.gpkg"
    _outlines([(0, 0, 10, 10)], ["a"]).to_file(ok)
    bad = tmp_path / "broken.gpkg"
    bad.write_text("not a geopackage")
    dest = tmp_path / "out.gpkg"
    with pytest.raises(InputDataError, match=r"broken\.gpkg: cannot read outlines"):
        write_changes(ok, bad, dest, 2005, 2021)
    with pytest.raises(InputDataError, match="second year must be later"):
        write_changes(ok, ok, dest, 2021, 2005)
    assert not dest.exists()


def test_areas_do_not_depend_on_the_map_projection_and_touching_is_not_membership() -> None:
    # Two glaciers touching at a corner in 2005; the same, unchanged, in 2021 but in Web
    # Mercator (which inflates map areas by 1/cos(lat)^2, about 1.5 at 36 N).
    boxes = [(0, 0, 1000, 1000), (1000, 1000, 2000, 2000)]
    first = _outlines(boxes, ["A", "B"])
    second = _outlines(boxes, ["A", "B"], "EPSG:3857")
    layers, summary = glacier_changes(first, second, 2000, 2020)
    g = layers["glaciers"]
    assert summary.area1_km2 == pytest.approx(2.0, rel=2e-3)
    assert summary.area2_km2 == pytest.approx(summary.area1_km2, rel=1e-6)
    assert set(g["status"]) == {"stable"}
    members = sorted(g["glacier_ids_2000"])
    assert members in (["A", "B"], ["A,B"])  # one complex (touching) or two, never "A,B" twice
    if len(g) == 2:
        assert sorted(g["glacier_ids_2020"]) == ["A", "B"]


def test_no_glaciers_at_all_is_not_an_error() -> None:
    empty = gpd.GeoDataFrame({"glacier_id": []}, geometry=[], crs="EPSG:4326")
    layers, summary = glacier_changes(empty, empty, 2000, 2020)
    assert len(layers["glaciers"]) == 0 and summary.area1_km2 == 0.0


def test_outlines_with_glacier_and_complex_layers_are_compared_by_complex(
    tmp_path: Path,
) -> None:
    """Outlines of glaciermap.products.outlines have layers glaciers (first) and complexes."""
    paths = []
    for year, width in ((2005, 2000), (2021, 1500)):
        p = tmp_path / f"r_{year}.gpkg"
        halves = [(0, 0, width / 2, 1000), (width / 2, 0, width, 1000)]
        _outlines(halves, [f"g{year}a", f"g{year}b"]).to_file(p, layer="glaciers")
        _outlines([(0, 0, width, 1000)], [f"C{year}"]).to_file(p, layer="complexes")
        paths.append(p)
    out = tmp_path / "changes.gpkg"
    summary = write_changes(*paths, out, 2005, 2021)
    assert summary.change_km2 == pytest.approx(-0.5, rel=2e-3)
    g = gpd.read_file(out, layer="glaciers")
    assert g["glacier_ids_2005"].tolist() == ["C2005"]
    assert g["glacier_ids_2021"].tolist() == ["C2021"]
