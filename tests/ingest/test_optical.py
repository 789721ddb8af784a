from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.ingest.optical import (
    COMMON_NAMES,
    build_optical_composite,
    composite,
    discover_scenes,
    scene_reflectance,
)

GRID = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 400400, 4000400), 20.0)


def _tif(
    path: Path, data: np.ndarray, res: float, dtype: str = "uint16", nodata: float = 0
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = Affine(res, 0, 400000, 0, -res, 4000400)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=dtype,
        crs="EPSG:32643",
        transform=t,
        nodata=nodata,
    ) as d:
        d.write(data.astype(dtype), 1)
    return path


def _s2_scene(
    root: Path,
    sensing: str,
    refl: float,
    scl: np.ndarray,
    mtd_offset: int | None,
    baseline: str = "N0500",
) -> list[Path]:
    folder = root / f"S2A_MSIL2A_{sensing}_{baseline}_R048_T43SDV_20230301T101010"
    files = []
    bands = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B11": 20, "B12": 20}
    for i, (band, res) in enumerate(bands.items()):
        n = int(400 / res)
        dn = np.full((n, n), (refl + 0.01 * i) * 10000 + (1000 if baseline >= "N0400" else 0))
        files.append(_tif(folder / f"T43SDV_{sensing}_{band}_{res}m.tif", dn, res))
    files.append(_tif(folder / f"T43SDV_{sensing}_SCL_20m.tif", scl, 20, "uint8"))
    if mtd_offset is not None:
        (folder / "MTD_MSIL2A.xml").write_text(
            "<r><BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE>"
            f'<BOA_ADD_OFFSET band_id="0">{mtd_offset}</BOA_ADD_OFFSET></r>'
        )
        files.append(folder / "MTD_MSIL2A.xml")
    return files


def test_sentinel2_offset_from_metadata_and_scl_mask(tmp_path: Path) -> None:
    scl = np.full((20, 20), 5)
    scl[:5] = 9  # cloud (high probability) in the top quarter
    files = _s2_scene(tmp_path, "20210818T054600", 0.3, scl, -1000)
    (scene,) = discover_scenes(files)
    assert scene.sensor == "sentinel-2-l2a" and scene.date == "2021-08-18"
    assert scene.offset == pytest.approx(-0.1) and scene.scale == pytest.approx(1e-4)
    refl = scene_reflectance(scene, GRID)
    assert np.all(np.isnan(refl[:, :5]))
    assert np.allclose(refl[0, 5:], 0.3, atol=1e-4)
    assert np.allclose(refl[5, 5:], 0.35, atol=1e-4)  # swir2 (20 m) resampled


def test_sentinel2_offset_from_baseline_without_metadata(tmp_path: Path) -> None:
    files = _s2_scene(tmp_path, "20220818T054600", 0.2, np.full((20, 20), 4), None, "N0400")
    (scene,) = discover_scenes(files)
    assert scene.offset == pytest.approx(-0.1)
    old = _s2_scene(tmp_path / "old", "20190818T054600", 0.2, np.full((20, 20), 4), None, "N0213")
    (old_scene,) = discover_scenes(old)
    assert old_scene.offset == 0.0
    assert np.allclose(scene_reflectance(old_scene, GRID)[0], 0.2, atol=1e-4)


def test_composite_median_fills_clouds(tmp_path: Path) -> None:
    scl1 = np.full((20, 20), 5)
    scl1[:10] = 8
    scl2 = np.full((20, 20), 5)
    scl2[10:] = 3  # cloud shadow
    f1 = _s2_scene(tmp_path, "20210818T054600", 0.3, scl1, -1000)
    f2 = _s2_scene(tmp_path, "20210828T054600", 0.5, scl2, -1000)
    refl, count = composite(discover_scenes(f1 + f2), GRID)
    assert np.all(count == 1)
    assert np.allclose(refl[0, :10], 0.5, atol=1e-4) and np.allclose(refl[0, 10:], 0.3, atol=1e-4)
    grid_json = tmp_path / "g.json"
    GRID.save(grid_json)
    out = tmp_path / "opt.tif"
    build_optical_composite(f1 + f2, grid_json, out)
    with rasterio.open(out) as src:
        assert list(src.descriptions) == [*COMMON_NAMES, "clear_count"]
        assert src.tags()["ACQUISITION_DATES"] == "2021-08-18,2021-08-28"


def test_uncovered_region_is_an_error(tmp_path: Path) -> None:
    files = _s2_scene(tmp_path, "20210818T054600", 0.3, np.full((20, 20), 9), -1000)
    GRID.save(tmp_path / "g.json")
    with pytest.raises(InputDataError, match="clear optical observation"):
        build_optical_composite(files, tmp_path / "g.json", tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_landsat_c2_l2_scaling_and_qa(tmp_path: Path) -> None:
    name = "LT05_L2SP_150035_20050820_20200902_02_T1"
    folder = tmp_path / name
    files = []
    for i, band in enumerate(["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"]):
        refl = 0.1 * (i + 1)
        files.append(
            _tif(folder / f"{name}_{band}.TIF", np.full((20, 20), (refl + 0.2) / 2.75e-5), 20)
        )
    qa = np.full((20, 20), 1 << 6)
    qa[:, :4] = (1 << 3) | (1 << 6)  # cloud bit
    qa[:, 4:8] = (1 << 5) | (1 << 6)  # snow bit: kept
    files.append(_tif(folder / f"{name}_QA_PIXEL.TIF", qa, 20, nodata=1))
    (scene,) = discover_scenes(files)
    assert scene.sensor == "landsat-5" and scene.date == "2005-08-20"
    refl = scene_reflectance(scene, GRID)
    assert np.all(np.isnan(refl[:, :, :4]))
    assert np.allclose(refl[4, :, 4:], 0.5, atol=1e-4)  # swir1 = SR_B5 for TM
    assert np.allclose(refl[5, :, 4:], 0.6, atol=1e-4)  # swir2 = SR_B7


def test_oli_band_mapping(tmp_path: Path) -> None:
    name = "LC08_L2SP_150035_20210820_20210901_02_T1"
    files = [
        _tif(tmp_path / f"{name}_SR_B{b}.TIF", np.full((20, 20), 10000 + b), 20)
        for b in range(1, 8)
    ]
    (scene,) = discover_scenes(files)
    assert scene.bands["blue"].name.endswith("SR_B2.TIF")
    assert scene.bands["swir1"].name.endswith("SR_B6.TIF")


def test_missing_band_is_reported(tmp_path: Path) -> None:
    files = _s2_scene(tmp_path, "20210818T054600", 0.3, np.full((20, 20), 4), -1000)
    files = [f for f in files if "_B11_" not in f.name]
    with pytest.raises(InputDataError, match=r"\['swir1'\]"):
        discover_scenes(files)


def test_landsat_level1_toa_from_mtl(tmp_path: Path) -> None:
    name = "LC08_L1TP_150035_20210820_20210901_02_T1"
    files = [_tif(tmp_path / f"{name}_B{b}.TIF", np.full((20, 20), 10000), 20) for b in range(2, 8)]
    with pytest.raises(MissingInputError, match="MTL"):
        discover_scenes(files)
    mtl = tmp_path / f"{name}_MTL.txt"
    lines = ["GROUP = LEVEL1_RADIOMETRIC_RESCALING", "    SUN_ELEVATION = 30.0"]
    for b in range(1, 10):
        lines += [
            f"    REFLECTANCE_MULT_BAND_{b} = 2.0000E-05",
            f"    REFLECTANCE_ADD_BAND_{b} = -0.100000",
        ]
    mtl.write_text("\n".join(lines) + "\n")
    (scene,) = discover_scenes([*files, mtl])
    assert scene.sensor == "landsat-8-l1"
    refl = scene_reflectance(scene, GRID)
    # (2e-5 * 10000 - 0.1) / sin(30 deg) = 0.2
    assert np.allclose(refl[np.isfinite(refl)], 0.2, atol=1e-5)


def test_best_pixel_prefers_target_date_and_falls_back(tmp_path: Path) -> None:
    scl_early = np.full((20, 20), 5)
    scl_late = np.full((20, 20), 5)
    scl_late[:10] = 9  # the late scene is cloudy in the north
    early = _s2_scene(tmp_path, "20210801T054600", 0.3, scl_early, -1000)
    late = _s2_scene(tmp_path, "20210830T054600", 0.5, scl_late, -1000)
    scenes = discover_scenes(early + late)
    best, count = composite(scenes, GRID, method="best", target_doy=242)  # 30 August
    assert np.allclose(best[0, 10:], 0.5, atol=1e-4)  # the late scene where it is clear
    assert np.allclose(best[0, :10], 0.3, atol=1e-4)  # the early one under the late clouds
    assert np.allclose(best[5, 10:], 0.55, atol=1e-4)  # bands of one acquisition together
    assert count[:10].max() == 1 and count[10:].min() == 2
    with pytest.raises(ConfigError, match="composite method"):
        composite(scenes, GRID, method="mean")


def _band_file(path: Path, value: int, grid: RegionGrid, dtype: str = "uint8") -> None:
    with rasterio.open(path, "w", **grid.profile(count=1, dtype=dtype, nodata=None)) as dst:
        dst.write(np.full((1, grid.height, grid.width), value, dtype=dtype))


def test_sidecar_maps_separate_band_files_and_nodata_null(tmp_path: Path) -> None:
    """A sidecar may name one file per band (any sidecar name), files it claims are not
    mistaken for Landsat products, and ``nodata: null`` keeps DN 0 as data."""
    g = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 400600, 4000600), 30)
    for k, band in enumerate(("B1", "B2", "B3", "B4")):
        _band_file(tmp_path / f"LE07_L1TP_149035_20020912_20200916_02_T1_{band}.TIF", k, g)
    side = tmp_path / "LE07_149035_20020912.bands.yaml"
    side.write_text(
        yaml.safe_dump(
            {
                "sensor": "landsat-7",
                "date": "2002-09-12",
                "scale": 0.004,
                "nodata": None,
                "bands": {
                    "blue": "LE07_L1TP_149035_20020912_20200916_02_T1_B1.TIF",
                    "green": {"file": "LE07_L1TP_149035_20020912_20200916_02_T1_B2.TIF"},
                    "red": {"file": "LE07_L1TP_149035_20020912_20200916_02_T1_B3.TIF", "band": 1},
                    "nir": "LE07_L1TP_149035_20020912_20200916_02_T1_B4.TIF",
                },
            }
        )
    )
    files = sorted(tmp_path.iterdir())
    (scene,) = discover_scenes(files)
    assert scene.nodata is None and set(scene.bands) == {"blue", "green", "red", "nir"}
    g.save(tmp_path / "g.json")
    build_optical_composite(files, tmp_path / "g.json", tmp_path / "opt.tif")
    with rasterio.open(tmp_path / "opt.tif") as src:
        data = src.read([1, 2, 3, 4])
    assert np.allclose(data[:, 0, 0], [0.0, 0.004, 0.008, 0.012])  # DN 0 of blue is data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- a list\n", "not a YAML mapping"),
        ("date: 2002-09-12\nbands: {blue: 1, lwir: 2}\n", "unknown: \\['lwir'\\]"),
        ("date: 2002-09-12\nbands: {blue: [1]}\n", "neither a band number nor a file name"),
        ("date: 2002-09-12\nbands: {blue: missing.tif}\n", "missing.tif .* not found"),
        ("date: 2002-09-12\nnodata: none\nbands: {blue: 1}\n", "must be numbers"),
        ("bands: {blue: 1}\n", "give the acquisition 'date'"),
        ("date: [\n", "not valid YAML"),
    ],
)
def test_bad_sidecars_are_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    from glaciermap.core.errors import GlacierMapError
    from glaciermap.ingest.optical import read_generic_scene

    g = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 400300, 4000300), 30)
    _band_file(tmp_path / "scene.tif", 1, g)
    side = tmp_path / "scene.tif.bands.yaml"
    side.write_text(content)
    with pytest.raises(GlacierMapError, match=message) as info:
        read_generic_scene(side)
    assert str(side) in str(info.value) and "\n" not in str(info.value).strip()


def test_harmonise_adjusts_tm_onto_oli_and_leaves_msi(tmp_path: Path) -> None:
    from glaciermap.ingest.harmonise import ETM_TO_OLI

    name = "LT05_L2SP_150035_20050820_20200902_02_T1"
    files = [
        _tif(tmp_path / name / f"{name}_{band}.TIF", np.full((20, 20), (0.6 + 0.2) / 2.75e-5), 20)
        for band in ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7"]
    ]
    s2 = _s2_scene(tmp_path / "s2", "20210818T054600", 0.6, np.full((20, 20), 5), -1000)
    GRID.save(tmp_path / "g.json")
    out: dict[str, dict[str, np.ndarray]] = {}
    for choice in ("none", "oli"):
        for key, scene in (("tm", files), ("msi", s2)):
            dest = tmp_path / f"{key}_{choice}.tif"
            build_optical_composite(scene, tmp_path / "g.json", dest, harmonise=choice)
            with rasterio.open(dest) as src:
                out.setdefault(choice, {})[key] = src.read(list(range(1, 7)))
                tag = src.tags()["HARMONISED"]
            assert tag == ("landsat-5 -> oli" if (key, choice) == ("tm", "oli") else "none")
    expected = [0.6 * ETM_TO_OLI[b][0] + ETM_TO_OLI[b][1] for b in COMMON_NAMES]
    assert np.allclose(out["none"]["tm"], 0.6, atol=1e-4)
    assert np.allclose(out["oli"]["tm"], np.array(expected)[:, None, None], atol=1e-4)
    assert np.array_equal(out["oli"]["msi"], out["none"]["msi"])
    with pytest.raises(ConfigError, match="harmonise"):
        build_optical_composite(files, tmp_path / "g.json", tmp_path / "x.tif", harmonise="hls")
    assert not (tmp_path / "x.tif").exists()
