"""Demo worlds over a real DEM with real glacier outlines (glaciermap.synthetic.real_terrain),
on the OGGM samples of ../shared/data (SRTM 3" DEM and RGI 5 outlines of the Oetztal Alps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import jsonschema
import numpy as np
import pytest
import rasterio
import rasterio.features
import yaml
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.windows import Window, from_bounds
from shapely.geometry import box

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.terrain import horn_gradient
from glaciermap.synthetic import demo
from glaciermap.synthetic.real_terrain import RealTerrainWorld
from glaciermap.synthetic.world import CLASS_CODES, World, class_map

REPO = Path(__file__).resolve().parents[2]
CRS = "EPSG:32632"  # UTM 32N
# 6 x 6 km around Hintereisferner, cutting through neighbouring glaciers at its edges.
BOUNDS = (630000.0, 5182000.0, 636000.0, 5188000.0)
YEAR = 2021


def _config(dem: str, outlines: str, bounds: Any = BOUNDS, **world: Any) -> dict[str, Any]:
    epoch = {
        "sensor": "sentinel-2",
        "optical_dates": ["2021-08-18"],
        "cloud_fraction": 0.0,
        "coherence": False,
    }
    return {
        "regions": {
            "oetztal": {"crs": CRS, "bounds": list(bounds), "resolution_m": 30, "years": [YEAR]}
        },
        "demo": {
            "seed": 0,
            "worlds": {
                "oetztal": {
                    "seed": 7,
                    "margin_m": 500,
                    "dem": dem,
                    "outlines": outlines,
                    "epochs": {YEAR: epoch},
                    **world,
                }
            },
        },
    }


def _oetztal(shared: Path) -> tuple[Path, Path]:
    d = shared / "oggm" / "oetztal"
    return d / "srtm_oetztal.tif", d / "rgi_oetztal.gpkg"


@pytest.fixture(scope="module")
def _cache() -> dict[str, Any]:
    return {}


@pytest.fixture
def real(
    shared_data: Path, _cache: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One world over the Oetztal DEM and outlines (ELA by default), generated once."""
    if "world" not in _cache:
        dem, outlines = _oetztal(shared_data)
        (spec,) = demo.world_specs(_config(str(dem), str(outlines)))
        out = tmp_path_factory.mktemp("real")
        files = demo.generate_world(spec, out)
        _cache["world"] = (spec, demo.make_world(spec), out, files, dem, outlines)
    return _cache["world"]


def _dem_on(dem: Path, transform: Any, shape: tuple[int, int], crs: str) -> np.ndarray:
    """The source DEM warped bilinearly onto a grid (the reference)."""
    out = np.empty(shape, np.float32)
    with rasterio.open(dem) as src:
        reproject(
            rasterio.band(src, 1),
            out,
            dst_transform=transform,
            dst_crs=crs,
            resampling=Resampling.bilinear,
        )
    return out.astype(np.float64)


def _region_xy(grid: RegionGrid) -> tuple[np.ndarray, np.ndarray]:
    return demo._centres(grid.transform, Window(0, 0, grid.width, grid.height))


def test_rendered_elevation_is_the_real_dem(real: Any) -> None:
    spec, world, _, files, dem, _ = real
    assert isinstance(world, RealTerrainWorld)
    # The world's elevation at the region's 30 m cells.
    ref = _dem_on(dem, spec.grid.transform, spec.grid.shape, CRS)
    err = world.elevation(*_region_xy(spec.grid)) - ref
    assert np.abs(err).mean() < 1.0 and np.abs(err).max() < 10.0, np.abs(err).max()
    # The Copernicus-style DEM tile written (1 arc-second, EPSG:4326) over the region.
    (tile,) = (f for f in files if f.name.endswith("_DEM.tif"))
    with rasterio.open(tile) as src:
        win = from_bounds(*transform_bounds(CRS, "EPSG:4326", *BOUNDS), transform=src.transform)
        win = win.round_offsets().round_lengths()
        z = src.read(1, window=win).astype(np.float64)
        tr = src.window_transform(win)
    assert (z != -32767).all()
    err = z - _dem_on(dem, tr, z.shape, "EPSG:4326")
    assert np.abs(err).mean() < 1.0 and np.quantile(np.abs(err), 0.99) < 5.0


def test_inventory_is_the_real_outlines_and_the_scene_shows_them(real: Any) -> None:
    _, world, out, files, _, outlines = real
    region = box(*BOUNDS)
    truth = gpd.read_file(outlines).to_crs(CRS).union_all().intersection(region)
    inv = gpd.read_file(out / "inventory" / f"oetztal_{YEAR}.gpkg").to_crs(CRS)
    rendered = inv.union_all().intersection(region)
    assert truth.area > 5e6  # several km2 of ice in the region
    assert rendered.area == pytest.approx(truth.area, rel=0.02)
    assert rendered.symmetric_difference(truth).area < 0.03 * truth.area
    # One polygon per real glacier, named by its real inventory id.
    real = gpd.read_file(outlines).to_crs(CRS)
    near = set(real[real.intersects(box(*BOUNDS).buffer(500))]["RGIId"])
    assert inv["RGIId"].is_unique and set(inv["RGIId"]) <= near
    assert len(inv) >= 3  # Hintereis-, Kesselwand- and Langtaufererjochferner at least
    # ELA by default: the median elevation of the glacier cells.
    ep = world.epochs[YEAR]
    assert ep.ela_m == pytest.approx(float(np.median(world.z[ep.glacier > 0.5])))

    # The Sentinel-2 scene: NDSI (B03, B11 at 20 m) high on the snow, firn and clean ice of
    # the outlines, low on the rock away from them.
    def band(suffix: str) -> tuple[np.ndarray, Any]:
        (f,) = (f for f in files if f.name.endswith(suffix))
        with rasterio.open(f) as src:
            return (src.read(1).astype(np.float64) - 1000) / 10000, src.transform

    green, _ = band("_B03_10m.tif")
    swir, tr = band("_B11_20m.tif")
    h, w = swir.shape
    green = green[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    ndsi = (green - swir) / (green + swir)
    classes = class_map(world, YEAR, *demo._centres(tr, Window(0, 0, w, h)))
    real_ice = gpd.read_file(outlines).to_crs(CRS)
    inside = rasterio.features.geometry_mask(real_ice.geometry, (h, w), tr, invert=True)
    away = rasterio.features.geometry_mask(real_ice.buffer(100).geometry, (h, w), tr)
    clean = inside & np.isin(classes, [CLASS_CODES[c] for c in ("snow", "firn", "ice")])
    rock = away & (classes == CLASS_CODES["rock"])
    assert clean.mean() > 0.05 and rock.mean() > 0.2
    assert np.isin(classes[inside], [CLASS_CODES["rock"], CLASS_CODES["water"]]).mean() < 0.02
    assert (ndsi[clean] > 0.4).mean() > 0.95
    assert (ndsi[rock] < 0.2).mean() > 0.9


def test_glacier_slopes_are_the_dems(real: Any) -> None:
    spec, world, _, _, dem, outlines = real
    surface = world.surface(YEAR, *_region_xy(spec.grid))
    ref = _dem_on(dem, spec.grid.transform, spec.grid.shape, CRS)
    slope = np.degrees(np.arctan(np.hypot(*horn_gradient(ref, spec.grid.resolution))))
    ice = rasterio.features.geometry_mask(
        gpd.read_file(outlines).to_crs(CRS).geometry,
        spec.grid.shape,
        spec.grid.transform,
        invert=True,
    )
    on_ice = float(np.median(surface.slope[surface.glacier]))
    assert on_ice == pytest.approx(float(np.median(slope[ice])), abs=1.0)
    assert on_ice < 25.0  # real valley glaciers, not the fractal world's steep terrain
    assert float(np.median(surface.slope[~surface.glacier])) == pytest.approx(
        float(np.median(slope[~ice])), abs=1.5
    )


def test_retreat_shrinks_the_outlines(shared_data: Path) -> None:
    dem, outlines = _oetztal(shared_data)
    cfg = _config(str(dem), str(outlines), margin_m=0)
    cfg["demo"]["worlds"]["oetztal"]["epochs"] = {
        2000: {"sensor": "sentinel-2", "optical_dates": ["2000-08-20"], "ela_m": 3000},
        2020: {"sensor": "sentinel-2", "optical_dates": ["2020-08-20"], "retreat_m": 60},
    }
    (spec,) = demo.world_specs(cfg)
    world: World = demo.make_world(spec)
    assert world.epochs[2000].ela_m == 3000.0
    wg = demo.world_grid(spec)
    a00 = demo.glacier_polygons(world, 2000, wg).area.sum()
    a20 = demo.glacier_polygons(world, 2020, wg).area.sum()
    assert 0.6 * a00 < a20 < 0.95 * a00


def test_bad_dem_gives_a_one_line_error_naming_it(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dem, outlines = _oetztal(shared_data)
    monkeypatch.chdir(tmp_path)  # paths are relative to the working directory
    with pytest.raises(MissingInputError) as missing:
        demo.make_world(demo.world_specs(_config("dems/nope.tif", str(outlines)))[0])
    (tmp_path / "bad.tif").write_text("not a raster")
    with pytest.raises(InputDataError) as unreadable:
        demo.make_world(demo.world_specs(_config("bad.tif", str(outlines)))[0])
    # Half of this region lies east of the Hintereisferner DEM (which ends at ~646.9 km E).
    hef = shared_data / "oggm" / "hintereisferner" / "hef_srtm.tif"
    half_out = (643000.0, 5182000.0, 651000.0, 5186000.0)
    with pytest.raises(InputDataError) as uncovered:
        demo.make_world(demo.world_specs(_config(str(hef), str(outlines), half_out))[0])
    for exc, name in (
        (missing, "dems/nope.tif"),
        (unreadable, "bad.tif"),
        (uncovered, str(hef)),
    ):
        msg = str(exc.value)
        assert msg.startswith(name) and "\n" not in msg, msg
    assert "covers only" in str(uncovered.value)
    with pytest.raises(MissingInputError, match=r"nope\.gpkg"):
        demo.make_world(demo.world_specs(_config(str(dem), "nope.gpkg"))[0])


def test_config_keys_are_checked() -> None:
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator(schema["properties"]["demo"])
    cfg = _config("dem.tif", "rgi.gpkg")
    assert not list(validator.iter_errors(cfg["demo"]))  # ela_m optional over a real DEM
    spec = demo.world_specs(cfg)[0]
    assert (spec.dem_path, spec.outlines_path) == ("dem.tif", "rgi.gpkg")
    assert spec.epochs[0].ela_m is None
    only_dem = _config("dem.tif", "rgi.gpkg")
    del only_dem["demo"]["worlds"]["oetztal"]["outlines"]
    assert list(validator.iter_errors(only_dem["demo"]))
    with pytest.raises(ConfigError, match="only one of dem"):
        demo.world_specs(only_dem)
    fractal = _config("dem.tif", "rgi.gpkg")
    for key in ("dem", "outlines"):
        del fractal["demo"]["worlds"]["oetztal"][key]
    assert list(validator.iter_errors(fractal["demo"]))  # no ela_m, no DEM
    with pytest.raises(ConfigError, match="no ela_m"):
        demo.world_specs(fractal)
