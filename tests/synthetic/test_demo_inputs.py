from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml

from glaciermap.core.errors import MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.catalog import InputCatalog, Missing
from glaciermap.ingest.names import copernicus_tile_bounds
from glaciermap.ingest.optical import discover_scenes
from glaciermap.synthetic import demo
from glaciermap.synthetic import world as synth

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_config() -> dict:  # type: ignore[type-arg]
    cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    # Smaller still: one 2 x 2 km region, both sensors.
    cfg["regions"] = {
        "demo": {**cfg["regions"]["demo"], "bounds": [455000, 4020000, 457000, 4022000]}
    }
    cfg["demo"]["worlds"] = {"demo": cfg["demo"]["worlds"]["demo"]}
    return cfg


@pytest.fixture(scope="module")
def world(tiny_config: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("demo")
    return out, demo.generate_demo(tiny_config, out)


def test_generated_files_are_the_announced_ones(
    tiny_config: dict, world: tuple[Path, list[Path]]
) -> None:  # type: ignore[type-arg]
    out, files = world
    (spec,) = demo.world_specs(tiny_config)
    announced = demo.all_product_paths([spec], out)
    assert sorted(files) == announced
    assert all(p.exists() for p in announced)


def test_demo_is_deterministic(
    tiny_config: dict, world: tuple[Path, list[Path]], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    _, files = world
    again = demo.generate_demo(tiny_config, tmp_path)
    a = next(f for f in files if f.name.endswith("_B03_10m.tif"))
    b = next(f for f in again if f.name.endswith("_B03_10m.tif"))
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert np.array_equal(x.read(), y.read())


def test_demo_products_in_real_formats(world: tuple[Path, list[Path]]) -> None:
    _, files = world
    s2 = [f for f in files if "/2021/optical/" in str(f)]
    scenes = discover_scenes(s2)
    assert len(scenes) == 2 and all(s.qa_kind == "scl" for s in scenes)
    assert scenes[0].offset == pytest.approx(-0.1)  # BOA_ADD_OFFSET -1000 from MTD
    b02 = next(f for f in s2 if f.name.endswith("_B02_10m.tif"))
    b11 = next(f for f in s2 if f.name.endswith("_B11_20m.tif"))
    with rasterio.open(b02) as a, rasterio.open(b11) as b:
        assert a.dtypes[0] == "uint16" and a.res == (10, 10) and b.res == (20, 20)
    (ls,) = discover_scenes([f for f in files if "/2005/optical/" in str(f)])
    assert ls.sensor == "landsat-5" and ls.qa_kind == "qa_pixel"
    with rasterio.open(ls.bands["red"]) as src:
        assert src.res == (30, 30)
        assert src.transform.c % 30 == 15  # Landsat pixel edges at 15 m offsets
    dem = [f for f in files if f.parent.name == "dem"]
    assert dem and all(copernicus_tile_bounds(f.name) for f in dem)
    with rasterio.open(dem[0]) as src:
        assert src.crs.to_epsg() == 4326 and src.width == 3600
    sar = [f for f in files if "/sar/" in str(f)]
    with rasterio.open(sar[0]) as src:
        assert src.crs.to_epsg() == 4326
    assert not any("corr" in f.name for f in files if "/2005/" in str(f))  # 2005: no coherence


def test_later_epoch_has_retreated(world: tuple[Path, list[Path]]) -> None:
    out, _ = world
    a05 = gpd.read_file(out / "inventory/demo_2005.gpkg").to_crs(32643).area.sum()
    a21 = gpd.read_file(out / "inventory/demo_2021.gpkg").to_crs(32643).area.sum()
    assert 0 < a21 < a05
    inv = gpd.read_file(out / "inventory/demo_2021.gpkg")
    assert {"RGIId", "Area", "Zmin", "Zmax"} <= set(inv.columns)


def test_glacier_mask_follows_ela() -> None:
    rng = np.random.default_rng(0)
    z = 3000 + 3000 * synth.fractal_surface((200, 200), 50.0, rng)
    low = synth.glacier_mask(z, 50.0, 4300).mean()
    high = synth.glacier_mask(z, 50.0, 5000).mean()
    assert 0 < high < low < 1
    # Tongues extend below the ELA: some glacier pixels lie lower than it.
    m = synth.glacier_mask(z, 50.0, 4500)
    assert (z[m] < 4500).any()


def test_catalog_real_region_reports_missing(tmp_path: Path) -> None:
    cfg = {
        "data_dir": str(tmp_path),
        "regions": {
            "hunza": {
                "crs": "EPSG:32643",
                "bounds": [440000, 4000000, 450000, 4010000],
                "resolution_m": 10,
                "years": [2021],
            }
        },
    }
    cat = InputCatalog(cfg)
    miss = cat.optical("hunza", 2021)
    assert isinstance(miss, Missing) and miss.path.endswith("hunza/2021/optical")
    assert "Sentinel-2" in miss.message("hunza", 2021)
    dem = cat.dem("hunza")
    assert isinstance(dem, Missing) and "Copernicus" in dem.help
    assert cat.inventory("hunza", 2021) is None
    opt = tmp_path / "hunza/2021/optical"
    opt.mkdir(parents=True)
    (opt / "T43SDV_20210818T054600_B02_10m.tif").write_bytes(b"")
    assert InputCatalog(cfg).optical("hunza", 2021) != []


def test_catalog_lists_metadata_and_sidecars(tmp_path: Path) -> None:
    cfg = {
        "data_dir": str(tmp_path),
        "regions": {
            "r": {
                "crs": "EPSG:32643",
                "bounds": [440000, 4000000, 450000, 4010000],
                "resolution_m": 10,
                "years": [2021],
            }
        },
    }
    opt = tmp_path / "r/2021/optical"
    opt.mkdir(parents=True)
    names = [
        "img.tif",
        "img.tif.bands.yaml",
        "LC08_L1TP_150035_20210820_20210901_02_T1_MTL.txt",
        "notes.txt",
        ".hidden.tif",
    ]
    for n in names:
        (opt / n).write_text("")
    listed = {Path(p).name for p in InputCatalog(cfg).optical("r", 2021)}  # type: ignore[union-attr]
    assert listed == set(names[:3])


def test_cast_and_cloud_shadows_fall_away_from_the_sun() -> None:
    z = np.zeros((60, 60), np.float32)
    z[28:32, :] = 500.0  # an east-west wall, 500 m high
    # Sun in the south (azimuth 180), 30 degrees high: the wall shades its north side.
    shadow = synth.cast_shadow(z, 10.0, 30.0, 180.0)
    assert shadow[20:28, 30].all() and not shadow[33:, 30].any()
    # 500 m / tan(30 deg) = 866 m of shadow: it ends within the 60 x 10 m array's top.
    assert shadow[0, 30]
    cloud = np.zeros((100, 100), np.float32)
    cloud[45:55, 45:55] = 1.0
    cs = synth.cloud_shadow(cloud, 10.0, 45.0, 180.0, cloud_height_m=200.0)
    rows = np.flatnonzero(cs.any(axis=1))
    assert rows.min() == 25 and rows.max() == 34  # 20 px north of the cloud


def test_layover_and_radar_shadow_geometry() -> None:
    # A ridge running north-south; the sensor looks east (azimuth 90, incidence 38 degrees).
    x = np.arange(100) * 10.0
    steep = np.where(x < 500, x * 1.5, (1000 - x) * 1.5)  # 56 degree flanks
    z = np.tile(steep, (40, 1)).astype(np.float32)
    layover, shadow = synth.layover_shadow(z, 10.0, look_azimuth_deg=90.0, incidence_deg=38.0)
    # The west flank rises towards the east, facing the sensor: layover (56 > 38).
    assert layover[20, 10:45].all() and not shadow[20, 10:45].any()
    # The east flank falls away at 56 degrees > 90 - 38 = 52: radar shadow.
    assert shadow[20, 55:90].all() and not layover[20, 55:90].any()
    gentle = (z / 3).astype(np.float32)  # 26 degree flanks: neither
    lo, sh = synth.layover_shadow(gentle, 10.0, 90.0, 38.0)
    assert not lo[:, 2:-2].any() and not sh[:, 2:-2].any()


def _tiny_spec(tiny_config: dict, **changes: object) -> demo.WorldSpec:  # type: ignore[type-arg]
    import dataclasses

    (spec,) = demo.world_specs(tiny_config)
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def test_products_do_not_depend_on_the_block_layout(
    tiny_config: dict,
    world: tuple[Path, list[Path]],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    out, files = world
    spec = _tiny_spec(tiny_config, block_px=96)  # the fixture used 512: one block
    again = demo.generate_world(spec, tmp_path)
    for suffix in (
        "_B03_10m.tif",
        "_SCL_20m.tif",
        "_SR_B5.TIF",
        "_VV.tif",
        "_ls_map.tif",
        "_DEM.tif",
    ):
        a = next(f for f in files if f.name.endswith(suffix))
        b = next(f for f in again if f.name.endswith(suffix))
        with rasterio.open(a) as x, rasterio.open(b) as y:
            xa, ya = x.read(1), y.read(1)
        if suffix in ("_VV.tif", "_DEM.tif"):  # interpolated from world samples: float noise
            np.testing.assert_allclose(xa, ya, rtol=1e-5, atol=1e-5)
        elif suffix in ("_SCL_20m.tif", "_ls_map.tif"):  # classes: identical
            assert np.array_equal(xa, ya), suffix
        else:
            # numpy's SIMD sin/log/exp may differ in the last bit between the vector body and
            # the tail of a loop, i.e. with the position in the block: a rare 1 DN rounding.
            diff = xa.astype(np.int64) - ya.astype(np.int64)
            assert (diff != 0).mean() < 1e-3 and np.abs(diff).max() <= 1, (suffix, diff)
    inv_a = gpd.read_file(out / "inventory/demo_2021.gpkg").to_crs(32643)
    inv_b = gpd.read_file(tmp_path / "inventory/demo_2021.gpkg").to_crs(32643)
    assert inv_a.area.sum() == pytest.approx(inv_b.area.sum(), rel=1e-9)
    assert len(inv_a) == len(inv_b)


def test_inventory_is_the_rendered_glacier_cover(
    tiny_config: dict,
    world: tuple[Path, list[Path]],  # type: ignore[type-arg]
) -> None:
    """The 20 m SCL says snow/ice (11) or cloud wherever the inventory has ice, and the
    outlines cover the snow/ice pixels below the seasonal-snow line."""
    out, files = world
    inv = gpd.read_file(out / "inventory/demo_2021.gpkg").to_crs(32643)
    scl_path = next(f for f in files if f.name.endswith("_SCL_20m.tif"))
    with rasterio.open(scl_path) as src:
        scl = src.read(1)
        inside = rasterio.features.geometry_mask(
            inv.geometry, scl.shape, src.transform, invert=True
        )
    assert inside.any()
    on_ice = scl[inside]
    assert np.isin(on_ice, [11, 8, 9, 3, 4, 5]).mean() > 0.98  # debris tongues are bare (5)
    assert (on_ice == 11).mean() > 0.5


def test_world_generation_memory_is_bounded(tiny_config: dict) -> None:  # type: ignore[type-arg]
    """Peak memory (tracemalloc: numpy buffers included) hardly grows with the world area."""
    import tracemalloc

    from glaciermap.core.grid import RegionGrid

    def peak(size_m: float, tmp: Path) -> int:
        grid = RegionGrid.from_bounds(
            "EPSG:32643", (455000, 4020000, 455000 + size_m, 4020000 + size_m), 10
        )
        ep = demo.EpochSpec(
            2021, "sentinel-2", 5000.0, ("2021-08-18",), ("2021-08-06",), coherence=False
        )
        spec = demo.WorldSpec(
            "m", grid, 3, (ep,), margin_m=200.0, max_phys_cells=10_000, block_px=128
        )
        tracemalloc.start()
        demo.generate_world(spec, tmp)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    import tempfile

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        small = peak(2000.0, Path(a))
        large = peak(6000.0, Path(b))  # 6.8 x the small world's area (with margins)
    assert large < 1.5 * small, (small, large)


def test_radar_shadow_extends_behind_steep_terrain() -> None:
    # A 600 m wall; the sensor looks east (azimuth 90) at 38 degrees incidence from the west.
    z = np.zeros((20, 200), np.float32)
    z[:, 50:55] = 600.0
    shadow = synth.radar_shadow(z, 10.0, look_azimuth_deg=90.0, incidence_deg=38.0)
    # Hidden ground east of the wall: 600 m * tan(38 deg) = 469 m, about 47 pixels.
    assert shadow[10, 56:95].all() and not shadow[10, 110:].any() and not shadow[10, :50].any()


def test_sar_products_carry_a_layover_shadow_map(
    tiny_config: dict,
    world: tuple[Path, list[Path]],  # type: ignore[type-arg]
) -> None:
    from glaciermap.ingest.names import classify_sar_files

    _, files = world
    ls = [f for f in files if f.name.endswith("_ls_map.tif")]
    (spec,) = demo.world_specs(tiny_config)
    assert len(ls) == sum(len(ep.sar_dates) for ep in spec.epochs)  # one per date
    with rasterio.open(ls[0]) as src:
        values = set(np.unique(src.read(1)).tolist())
    assert values <= {0, 1, 2, 255} and {0, 1, 2} <= values  # neither, layover, shadow
    assert not any("_ls_map" in s.path.name for s in classify_sar_files(files))


def test_lakes_grow_in_the_forefield_as_glaciers_retreat(tiny_config: dict) -> None:  # type: ignore[type-arg]
    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    (spec,) = [s for s in demo.world_specs(cfg) if s.region == "demo"]
    w = demo.make_world(spec)
    lake = {y: float((ep.lake > 0.5).sum()) for y, ep in w.epochs.items()}
    ice = {y: float((ep.glacier > 0.5).sum()) for y, ep in w.epochs.items()}
    assert ice[2021] < ice[2005] and 0 < lake[2005] < lake[2021]


def test_hashed_noise_is_standard_and_reproducible() -> None:
    rows, cols = np.arange(300)[:, None], np.arange(300)[None, :]
    n = synth.hash_normal(5, 1, rows, cols)
    assert abs(n.mean()) < 0.02 and abs(n.std() - 1) < 0.02
    assert np.array_equal(n[100:200, 50:60], synth.hash_normal(5, 1, rows[100:200], cols[:, 50:60]))
    g = synth.hash_gamma(5, 4, rows, cols)
    assert abs(g.mean() - 1) < 0.01 and abs(g.var() - 0.25) < 0.02
    x = np.arange(0, 3000, 10.0) + 5
    whole = synth.value_noise(x, x[::-1], 400.0, 3)
    part = synth.value_noise(x[100:], x[::-1][:50], 400.0, 3)
    assert np.allclose(whole[:50, 100:], part)


def test_change_pairs_are_checked(tmp_path: Path) -> None:
    from glaciermap.core.errors import ConfigError

    cfg = {
        "regions": {"r": {"crs": "EPSG:32643", "bounds": [0, 0, 10, 10], "resolution_m": 10}},
        "changes": {"pairs": ["r_2000_2021"]},
    }
    assert InputCatalog(cfg).change_pairs() == [("r", 2000, 2021)]
    cfg["changes"] = {"pairs": ["r_2021_2000"]}
    with pytest.raises(ConfigError, match="write 'r_2000_2021'"):
        InputCatalog(cfg).change_pairs()
    cfg["changes"] = {"pairs": ["nowhere_2000_2021"]}
    with pytest.raises(ConfigError, match="not in the config"):
        InputCatalog(cfg).change_pairs()


def test_demo_never_writes_into_user_data(tmp_path: Path) -> None:
    """The deletion case: demo regions without data_dir once resolved to data/, so the demo
    job declared real-named Copernicus tiles under data/dem/ as outputs and Snakemake deleted
    a user's real tiles when the job failed. Demo outputs now live under resources/demo/ only,
    and real files with the same names survive a demo run untouched."""
    import hashlib

    from workflow_helpers import make_workdir, snakemake

    from glaciermap.core.errors import ConfigError
    from glaciermap.synthetic.demo import DEMO_DIR

    work = make_workdir(tmp_path / "w")
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    assert "data_dir" not in cfg["regions"]["demo"]
    cat = InputCatalog(cfg)
    demo_files = [Path(p) for p in cat.all_demo_files()]
    assert demo_files and all(p.parts[:2] == tuple(Path(DEMO_DIR).parts) for p in demo_files)
    # Real tiles under the user's data/ carrying the demo tiles' (real Copernicus) names.
    real = [work / "data/dem" / p.name for p in cat.demo_files("demo")["dem"]]
    for k, p in enumerate(real):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"real tile {k}".encode() * 100)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in real}
    snakemake(work, "--cores", "1", str(demo_files[0]))
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in real} == before
    assert (work / demo_files[0]).exists()
    # A demo region pointed at a user folder is refused before anything runs.
    bad = {**cfg, "regions": {**cfg["regions"], "demo": {**cfg["regions"]["demo"]}}}
    bad["regions"]["demo"]["data_dir"] = "data"
    with pytest.raises(ConfigError, match="demo regions are generated under"):
        InputCatalog(bad)
    bad = {**cfg, "data_dir": DEMO_DIR}
    with pytest.raises(ConfigError, match="inside the generated demo folder"):
        InputCatalog(bad)


def test_shared_scene_folder_and_inventory_serve_several_regions(tmp_path: Path) -> None:
    """One scene in data/scenes/{year}/optical/ and one inventory file serve two regions; the
    composite of a region takes only the scenes that intersect its grid, and says so."""
    import logging

    from affine import Affine

    from glaciermap.core.grid import RegionGrid
    from glaciermap.ingest.optical import build_optical_composite

    region = {"crs": "EPSG:32643", "resolution_m": 30, "years": [2002], "inventory": "rgi.gpkg"}
    cfg = {
        "data_dir": str(tmp_path),
        "regions": {
            "west": {
                **region,
                "bounds": [400000, 4000000, 403000, 4003000],
                "inventory": "rgi.gpkg",
            },
            "east": {
                **region,
                "bounds": [403000, 4000000, 406000, 4003000],
                "inventory": "rgi.gpkg",
            },
            "far": {**region, "bounds": [500000, 4000000, 503000, 4003000]},
        },
    }
    shared = tmp_path / "scenes/2002/optical"
    shared.mkdir(parents=True)
    prof = {
        "driver": "GTiff",
        "width": 200,
        "height": 100,
        "count": 4,
        "dtype": "uint8",
        "crs": "EPSG:32643",
        "transform": Affine(30, 0, 400000, 0, -30, 4003000),
    }
    with rasterio.open(shared / "scene.tif", "w", **prof) as dst:
        dst.write(np.full((4, 100, 200), 100, np.uint8))
    far = {**prof, "transform": Affine(30, 0, 600000, 0, -30, 4003000)}
    with rasterio.open(shared / "elsewhere.tif", "w", **far) as dst:
        dst.write(np.full((4, 100, 200), 50, np.uint8))
    for name in ("scene.tif", "elsewhere.tif"):
        (shared / f"{name}.bands.yaml").write_text(
            "date: 2002-09-12\nscale: 0.004\nbands: {blue: 1, green: 2, red: 3, nir: 4}\n"
        )
    cat = InputCatalog(cfg)
    west, east = cat.optical("west", 2002), cat.optical("east", 2002)
    assert west == east and len(west) == 4  # type: ignore[arg-type]
    assert cat.inventory_path("west", 2002) == cat.inventory_path("east", 2002) == "rgi.gpkg"
    g = RegionGrid.from_bounds("EPSG:32643", cfg["regions"]["east"]["bounds"], 30)
    g.save(tmp_path / "g.json")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("glaciermap.ingest.optical").addHandler(handler)
    try:
        build_optical_composite(west, tmp_path / "g.json", tmp_path / "east.tif")  # type: ignore[arg-type]
    finally:
        logging.getLogger("glaciermap.ingest.optical").removeHandler(handler)
    assert any("elsewhere" in r.getMessage() and "skipped" in r.getMessage() for r in records)
    with rasterio.open(tmp_path / "east.tif") as src:
        assert np.allclose(src.read(1), 0.4)
        assert "elsewhere" in src.tags()["SKIPPED_SCENES"]  # the report's map says so
    from glaciermap.products.plots import skipped_inputs

    assert skipped_inputs(tmp_path / "east.tif") == "left out: 1 optical scene outside the region"
    g_far = RegionGrid.from_bounds("EPSG:32643", cfg["regions"]["far"]["bounds"], 30)
    g_far.save(tmp_path / "far.json")
    from glaciermap.core.errors import InputDataError

    with pytest.raises(InputDataError, match="none of the 2 optical scenes overlaps"):
        build_optical_composite(west, tmp_path / "far.json", tmp_path / "far.tif")  # type: ignore[arg-type]
    assert not (tmp_path / "far.tif").exists()


def test_debris_cover_lies_inside_the_glaciers(tmp_path: Path) -> None:
    """The demo's debris-cover polygons (truth of the debris IoU) are part of its glacier
    cover, and a small part of it; a real region finds them beside its inventory."""
    cfg = yaml.safe_load((REPO / ".test/config/config.yaml").read_text())
    cfg["demo"]["worlds"] = {"demo": cfg["demo"]["worlds"]["demo"]}  # 6 x 6 km: has tongues
    out = tmp_path / "demo"
    demo.generate_demo(cfg, out)
    inv = gpd.read_file(out / "inventory/demo_2021.gpkg").to_crs(32643)
    deb = gpd.read_file(out / "inventory/demo_2021_debris.gpkg").to_crs(32643)
    assert len(deb) > 0
    ice, debris = inv.union_all(), deb.union_all()
    assert debris.difference(ice.buffer(1.0)).area < 1e-3 * debris.area
    assert 0 < debris.area < 0.5 * ice.area
    region = {"crs": "EPSG:32643", "bounds": [0, 0, 100, 100], "resolution_m": 10, "years": [2021]}
    cfg = {"data_dir": str(tmp_path), "regions": {"r": region}}
    assert InputCatalog(cfg).debris("r", 2021) is None  # optional
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory/r_2021_debris.gpkg").write_bytes(b"")
    assert InputCatalog(cfg).debris("r", 2021) == f"{tmp_path}/inventory/r_2021_debris.gpkg"
    region["debris"] = "nowhere_{year}.gpkg"
    with pytest.raises(MissingInputError, match=r"nowhere_2021\.gpkg"):
        InputCatalog(cfg).debris("r", 2021)


def test_dem_of_an_earlier_glacier_state_keeps_ice_surfaces() -> None:
    """``dem_ela_m`` below the scene's ELA: the terrain (and DEM) keeps the smooth ice surface
    of the larger glaciers on ground that is bare in the scene; the scene's glaciers are
    unchanged."""
    grid = RegionGrid.from_bounds("EPSG:32643", (449000, 4012000, 459000, 4022000), 10)
    same = synth.build_world(grid, 7, {2015: 5150.0})
    older = synth.build_world(grid, 7, {2015: 5150.0}, dem_ela_m=4950.0)
    assert np.array_equal(same.epochs[2015].glacier, older.epochs[2015].glacier)
    was_ice = (older.union > 0.5) & (same.union <= 0.5)
    assert was_ice.mean() > 0.01  # ground deglaciated since the DEM's state
    changed = np.abs(older.z - same.z) > 1.0
    assert changed[was_ice].mean() > 0.5  # its surface is the old ice surface, not the bed
    assert changed[(same.union > 0.9) & ~was_ice].mean() < changed[was_ice].mean()


def test_a_processing_tile_depends_on_the_dem_tiles_under_it(tmp_path: Path) -> None:
    """A terrain tile job's inputs are the Copernicus tiles its window (plus halo) reaches,
    not every DEM tile of the region: a replaced DEM tile reruns only the tiles under it."""
    dem = tmp_path / "dem"
    dem.mkdir()
    for lat in (35, 36, 37):
        for lon in (73, 74, 75):
            (dem / f"Copernicus_DSM_COG_10_N{lat:02d}_00_E{lon:03d}_00_DEM.tif").touch()
    (dem / "my_lidar_dem.tif").touch()  # not a Copernicus name: kept for every tile
    # UTM 43N, ~150 x 200 km around 74.5 E, 36.5 N, at 100 m
    cfg = {
        "data_dir": str(tmp_path),
        "regions": {
            "big": {
                "crs": "EPSG:32643",
                "bounds": [380000, 3950000, 530000, 4150000],
                "resolution_m": 100,
                "years": [2021],
            }
        },
    }
    cat = InputCatalog(cfg)
    everything = cat.dem("big")
    assert isinstance(everything, list) and len(everything) == 10
    nw = cat.dem_under("big", (0, 0, 100, 100))  # 10 x 10 km in the north-west corner
    assert isinstance(nw, list)
    assert {Path(p).name for p in nw} == {
        "Copernicus_DSM_COG_10_N37_00_E073_00_DEM.tif",
        "my_lidar_dem.tif",
    }
    whole = cat.dem_under("big", (0, 0, 2000, 1500))
    assert sorted(whole) == sorted(everything)  # type: ignore[arg-type]
