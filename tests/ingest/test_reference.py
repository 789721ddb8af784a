"""The reference course's dataset (train/val/test.hdf5, one group per tile) converted into the
chip store, trained on, scored on its test split and benchmarked end to end."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import REPO, snakemake

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import band_names, read_json
from glaciermap.ingest.optical import COMMON_NAMES
from glaciermap.ingest.reference import (
    ALPS_CHANNELS,
    DEFAULT_REGIONS,
    convert_reference,
    reference_layers,
)
from glaciermap.ml.chip_eval import evaluate_chips
from glaciermap.ml.chips import IGNORE, SPLIT_CODES
from glaciermap.ml.features import (
    FEATURE_SETS,
    VALID,
    build_feature_stack,
    model_layers,
    normalized_difference,
    stack_layers,
)
from glaciermap.ml.predict import sliding_window_predict
from glaciermap.ml.train import RfParams, load_tiles, train_rf

SIZE, PAD_H, PAD_W = 70, 4, 6  # data area 70 x 70 px in a tile padded to 78 x 82
SPLIT_TILES = {"train": 6, "val": 2, "test": 2}
# Reflectance of glacier and background per optical band; the other channels' means.
GLACIER = (0.8, 0.75, 0.7, 0.6, 0.1, 0.08, 3200.0, 20.0, -15.0, -22.0, 0.3)
GROUND = (0.15, 0.18, 0.2, 0.3, 0.25, 0.2, 2400.0, 30.0, -10.0, -17.0, 0.7)
NOISE = (0.03,) * 6 + (100.0, 5.0, 1.0, 1.0, 0.05)


def tile_arrays(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features (78, 82, 11) and one-hot outlines (78, 82, 2) of one padded tile: a glacier
    disc in the data area, and garbage (glacier everywhere, huge values) in the padding."""
    h, w = SIZE + 2 * PAD_H, SIZE + 2 * PAD_W
    rr, cc = np.mgrid[:SIZE, :SIZE]
    r0, c0, rad = rng.uniform(20, 50), rng.uniform(20, 50), rng.uniform(12, 22)
    ice = (rr - r0) ** 2 + (cc - c0) ** 2 < rad**2
    data = np.where(ice[..., None], GLACIER, GROUND) + rng.normal(0, NOISE, (SIZE, SIZE, 11))
    feats = np.full((h, w, 11), 1e4, dtype=np.float32)
    outl = np.zeros((h, w, 2), dtype=np.uint8)
    outl[..., 1] = 1
    area = np.s_[PAD_H : PAD_H + SIZE, PAD_W : PAD_W + SIZE]
    feats[area] = data
    outl[area] = np.stack([~ice, ice], axis=-1)
    return feats, outl


def write_reference(
    folder: Path, tiles: dict[str, int] = SPLIT_TILES, prefix: str = "ALP", seed: int = 0
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The course's layout: {train,val,test}.hdf5, a group per tile code; returns the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for s, (split, n) in enumerate(tiles.items()):
        out[split] = {}
        with h5py.File(folder / f"{split}.hdf5", "w") as f:
            for i in range(n):
                code = f"{prefix}-{20 + i}-{10 + s}"
                feats, outl = tile_arrays(rng)
                g = f.create_group(code)
                g.create_dataset("features", data=feats)
                g.create_dataset("outlines", data=outl)
                g.attrs.update(height=SIZE, width=SIZE, pad_height=PAD_H, pad_width=PAD_W)
                out[split][code] = (feats, outl)
    return out


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    folder = tmp_path_factory.mktemp("ref") / "alps"
    return folder, write_reference(folder)


@pytest.fixture(scope="module")
def store(ref: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[type-arg]
    dest = tmp_path_factory.mktemp("tiles") / "alps"
    convert_reference(ref[0], dest, year=2015, tile_size=32, name="alps")
    return dest


DERIVED_NAMES = [
    "ndsi",
    "ndwi",
    "brightness",
    "ratio_nir_red",
    "ratio_blue_red",
    "ratio_swir1_red",
    "brightness_mean_5",
    "brightness_std_5",
]


def test_defaults_match_the_schema() -> None:
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    props = schema["properties"]["reference"]["additionalProperties"]["properties"]
    assert props["channels"]["default"] == list(ALPS_CHANNELS)
    assert props["regions"]["default"] == DEFAULT_REGIONS
    assert ALPS_CHANNELS[:6] == COMMON_NAMES and len(ALPS_CHANNELS) == 11


def test_conversion_shapes_splits_and_padding(ref: tuple[Path, dict], store: Path) -> None:  # type: ignore[type-arg]
    _, arrays = ref
    meta = read_json(store / "meta.json")
    assert meta["layers"] == [*ALPS_CHANNELS, *DERIVED_NAMES] and meta["tile_size"] == 32
    x = np.load(store / "features.npy", mmap_mode="r")
    y = np.load(store / "labels.npy", mmap_mode="r")
    index = pd.read_csv(store / "index.csv")
    n = 10 * 3 * 3  # 10 tiles of 70 px: 3 x 3 chips of 32 px each, the last ones padded
    assert x.shape == (n, 19, 32, 32) and x.dtype == np.float32
    assert y.shape == (n, 32, 32) and y.dtype == np.uint8
    make_tiles_columns = ["tile_id", "split", "region", "year", "row", "col", "left", "bottom"]
    make_tiles_columns += ["right", "top", "valid_fraction", "glacier_fraction"]
    assert list(index.columns) == [*make_tiles_columns, "tile", "chip_row", "chip_col"]
    assert index["split"].value_counts().to_dict() == {"train": 54, "val": 18, "test": 18}
    assert set(index["region"]) == {"alps"} and set(index["year"]) == {2015}
    first = index[index["tile"] == "ALP-20-10"]
    assert (first["row"] == 20).all() and (first["col"] == 10).all()
    assert (index["right"] - index["left"] == 32).all() and (index["top"] > index["bottom"]).all()
    # the padding of the last chip is NaN / IGNORE; the file's padding never enters
    last = index[(index["chip_row"] == 2) & (index["chip_col"] == 2)].index
    assert np.isnan(x[last][:, :, SIZE - 64 :, :]).all()
    assert (y[last][:, SIZE - 64 :, :] == IGNORE).all() and (
        y[last][:, :, SIZE - 64 :] == IGNORE
    ).all()
    assert np.nanmax(np.asarray(x[:, :6])) < 5  # no 1e4 of the file's padding
    # the pixel store: one member per tile, its data area exactly the file's
    members = meta["members"]
    assert len(members) == 10 and [m["split"] for m in members].count("train") == 6
    ax = np.load(store / "area_features.npy", mmap_mode="r")
    ay = np.load(store / "area_labels.npy", mmap_mode="r")
    asp = np.load(store / "area_split.npy", mmap_mode="r")
    assert ax.shape == (19, sum(m["height"] * m["width"] for m in members))
    for m in members:
        feats, outl = arrays[m["split"]][m["tile"]]
        sl = slice(m["offset"], m["offset"] + m["height"] * m["width"])
        mx = np.asarray(ax[:, sl]).reshape(19, m["height"], m["width"])
        my = np.asarray(ay[sl]).reshape(m["height"], m["width"])
        area = np.s_[PAD_H : PAD_H + SIZE, PAD_W : PAD_W + SIZE]
        np.testing.assert_array_equal(mx[:11, :SIZE, :SIZE], np.moveaxis(feats[area], -1, 0))
        np.testing.assert_array_equal(my[:SIZE, :SIZE], outl[area][..., 1])
        assert (my[SIZE:] == IGNORE).all() and (my[:, SIZE:] == IGNORE).all()
        assert (np.asarray(asp[sl]) == SPLIT_CODES[m["split"]]).all()
        ndsi = normalized_difference(mx[1, :SIZE, :SIZE], mx[4, :SIZE, :SIZE])
        np.testing.assert_array_equal(mx[11, :SIZE, :SIZE], ndsi)
    # glacier fractions from the labels, chip by chip
    got = index.set_index("tile_id")["glacier_fraction"].to_numpy()
    np.testing.assert_allclose(got, (np.asarray(y) == 1).mean(axis=(1, 2)), atol=1e-4)


@pytest.mark.parametrize("featureset", ["optical", "optical_dem", "optical_dem_sar"])
def test_training_loads_the_store(store: Path, featureset: str) -> None:
    ts = load_tiles(store, featureset, derived=True)
    assert ts.layers[: len(FEATURE_SETS[featureset])] == list(FEATURE_SETS[featureset])
    assert ts.train_counts()[0] > 0 and ts.train_counts()[1] > 0
    assert len(ts.members) == 10 and ts.tile_size == 32


def test_conversion_streams_tile_by_tile(tmp_path: Path) -> None:
    write_reference(tmp_path / "ref", {"train": 16, "val": 2, "test": 2}, seed=3)
    tracemalloc.start()
    convert_reference(tmp_path / "ref", tmp_path / "out", year=2015, tile_size=32)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stored = sum(
        (tmp_path / "out" / f).stat().st_size for f in ("features.npy", "area_features.npy")
    )
    assert peak < stored / 4, (peak, stored)


def test_channel_mapping_drops_and_keeps_given_derived_layers() -> None:
    channels = [*COMMON_NAMES, "elevation", "slope", None, None, "ndsi"]
    layers, keys = reference_layers(channels, texture_px=3)
    assert layers[:9] == [*COMMON_NAMES, "elevation", "slope", "ndsi"]
    assert "ndsi" not in keys and "brightness_std_3" in layers  # ndsi given, not recomputed
    with pytest.raises(ConfigError, match="repeats"):
        reference_layers(["blue", "blue"])


def _one_line(exc: pytest.ExceptionInfo[BaseException], *parts: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, (p, msg)


def _broken(tmp_path: Path, edit: str) -> Path:
    folder = tmp_path / edit
    write_reference(folder, {"train": 2, "val": 1, "test": 1})
    with h5py.File(folder / "val.hdf5", "a") as f:
        g = f["ALP-20-11"]
        if edit == "no_outlines":
            del g["outlines"]
        elif edit == "no_attr":
            del g.attrs["pad_width"]
        elif edit == "shape":
            del g["outlines"]
            g.create_dataset("outlines", data=np.zeros((60, 60, 2), np.uint8))
        elif edit == "area":
            g.attrs["height"] = 200
        elif edit == "prefix":
            f.move("ALP-20-11", "XYZ-20-11")
        elif edit == "code":
            f.move("ALP-20-11", "tile_7")
    return folder


@pytest.mark.parametrize(
    ("edit", "error", "parts"),
    [
        ("no_outlines", InputDataError, ["val.hdf5", "ALP-20-11", "'outlines'"]),
        ("no_attr", InputDataError, ["val.hdf5", "ALP-20-11", "'pad_width'"]),
        ("shape", InputDataError, ["val.hdf5", "ALP-20-11", "do not match"]),
        ("area", InputDataError, ["val.hdf5", "ALP-20-11", "outside the padded tile"]),
        ("prefix", ConfigError, ["val.hdf5", "XYZ-20-11", "'XYZ'", "regions"]),
        ("code", InputDataError, ["val.hdf5", "'tile_7'", "PREFIX-ROW-COL"]),
    ],
)
def test_bad_files_are_one_line_errors(
    tmp_path: Path, edit: str, error: type[Exception], parts: list[str]
) -> None:
    folder = _broken(tmp_path, edit)
    with pytest.raises(error) as exc:
        convert_reference(folder, tmp_path / "out", year=2015, tile_size=32, name="alps")
    _one_line(exc, *parts)
    assert not (tmp_path / "out" / "features.npy").exists()  # checked before writing


def test_missing_unreadable_and_miscounted_files(tmp_path: Path) -> None:
    folder = tmp_path / "ref"
    write_reference(folder, {"train": 2, "val": 1, "test": 1})
    with pytest.raises(InputDataError) as exc:
        convert_reference(folder, tmp_path / "o", 2015, 32, channels=ALPS_CHANNELS[:10])
    _one_line(exc, "train.hdf5", "ALP-20-10", "11 channels", "names 10")
    (folder / "test.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(InputDataError) as exc:
        convert_reference(folder, tmp_path / "o", 2015, 32)
    _one_line(exc, "test.hdf5", "not a readable HDF5 file")
    (folder / "test.hdf5").unlink()
    with pytest.raises(MissingInputError) as exc:
        convert_reference(folder, tmp_path / "o", 2015, 32)
    _one_line(exc, "test.hdf5", "not found")
    with pytest.raises(MissingInputError) as exc:
        convert_reference(tmp_path / "nowhere", tmp_path / "o", 2015, 32, name="alps")
    _one_line(exc, "nowhere", "reference: alps: path")


def test_reference_model_predicts_on_own_feature_stack(store: Path, tmp_path: Path) -> None:
    """A model trained on the reference dataset has the layers model_layers gives for a
    regular feature stack with the same base layers, so it predicts on one's own region."""
    grid = RegionGrid.from_bounds("EPSG:32632", (400000, 5100000, 400640, 5100640), 10.0)
    grid.save(tmp_path / "g.json")
    rng = np.random.default_rng(1)
    ice = np.zeros(grid.shape, dtype=bool)
    ice[10:40, 15:50] = True

    def raster(name: str, idx: list[int], names: list[str]) -> Path:
        from glaciermap.core.grid import write_raster

        data = np.stack([np.where(ice, GLACIER[i], GROUND[i]) for i in idx])
        data = data + rng.normal(0, [[[NOISE[i]]] for i in idx], data.shape)
        write_raster(tmp_path / name, data.astype(np.float32), grid, names, nodata=np.nan)
        return tmp_path / name

    stack = tmp_path / "features.tif"
    build_feature_stack(
        tmp_path / "g.json",
        raster("opt.tif", list(range(6)), list(COMMON_NAMES)),
        raster("dem.tif", [6], ["elevation"]),
        raster("slope.tif", [7], ["slope"]),
        stack,
        backscatter=raster("bs.tif", [8, 9], ["sar_copol_db", "sar_crosspol_db"]),
        coherence=raster("coh.tif", [10], ["sar_copol_coherence"]),
    )
    own = stack_layers(stack)
    ref_layers = read_json(store / "meta.json")["layers"]
    assert sorted(own) == sorted(ref_layers)  # the same layers, whatever their order
    for fs in FEATURE_SETS:
        for derived in (True, False):
            assert model_layers(fs, ref_layers, derived) == model_layers(fs, own, derived), fs
    model = tmp_path / "rf"
    train_rf(store, "optical_dem_sar", model, RfParams(n_estimators=5, tune=False))
    trained = read_json(model / "norm.json")["layers"]
    assert trained == model_layers("optical_dem_sar", own, True)
    sliding_window_predict(stack, model, tmp_path / "prob.tif", window=32, overlap=8, block=256)
    assert band_names(tmp_path / "prob.tif")[:2] == ["probability", "uncertainty"]
    import rasterio

    with rasterio.open(tmp_path / "prob.tif") as src:
        p = src.read(1)
    assert p[ice].mean() > 0.8 and p[~ice].mean() < 0.2  # the glacier is found
    m = evaluate_chips(store, model, tmp_path / "eval.json", "test")
    keys = ("accuracy", "precision", "recall", "f1", "iou", "iou_background", "miou")
    assert all(0 <= m[k] <= 1 for k in keys) and "all_glacier_miou" in m
    assert m["miou"] > m["all_glacier_miou"] + 0.3 and m["n_chips"] == 18
    assert VALID not in trained


# -- the workflow ---------------------------------------------------------------------------


def reference_config(test_on: str | None = "elsewhere_2015") -> dict:  # type: ignore[type-arg]
    return {
        "regions": {},
        "reference": {"alps": {"path": "ref/alps", "year": 2015, "tile_size": 32}},
        "model": {"dataset": "alps", "arch": "unet", "featureset": "optical"},
        "training": {
            "cnn": {
                "epochs": 2,
                "min_epochs": 1,
                "patches_per_epoch": 16,
                "base_channels": 8,
                "depth": 2,
            },
            "rf": {"n_estimators": 5, "tune": False},
        },
        "benchmark": {
            "archs": ["rf", "unet"],
            "featuresets": ["optical", "optical_dem", "optical_dem_sar"],
            "test_on": test_on,  # ignored for a reference dataset
        },
        "threads": {"train": 1, "predict": 1},
    }


def _workdir(path: Path, config: dict) -> Path:  # type: ignore[type-arg]
    (path / "config").mkdir(parents=True)
    (path / "config/config.yaml").write_text(yaml.safe_dump(config))
    return path


@pytest.mark.workflow
def test_workflow_benchmark_table(tmp_path: Path) -> None:
    wd = _workdir(tmp_path, reference_config())
    write_reference(wd / "ref/alps")
    snakemake(wd, "--cores", "2", "tables/alps_benchmark.md")
    table = (wd / "tables/alps_benchmark.md").read_text()
    assert "held-out test chips" in table and "elsewhere_2015" not in table
    for model in ("RF", "U-Net"):
        for fs in ("Optical", "Opt+DEM", "Opt+DEM+SAR"):
            assert f"| {model} | {fs} |" in table, table
    assert "(.986)" in table and "(.873)" in table  # the published values beside
    csv = pd.read_csv(wd / "tables/alps_benchmark.csv")
    assert len(csv) == 6 and {"bg IoU", "mIoU"} <= set(csv.columns)
    for m in ("rf_optical", "unet_optical_dem_sar"):
        res = json.loads((wd / f"results/eval/alps/test/{m}.json").read_text())
        assert res["split"] == "test" and res["n_chips"] == 18
        assert {"accuracy", "iou", "iou_background", "miou", "all_glacier_miou"} <= set(res)
    rf = json.loads((wd / "results/eval/alps/test/rf_optical.json").read_text())
    assert rf["miou"] > rf["all_glacier_miou"] + 0.3
    assert not (wd / "results/features").exists()  # no feature stack: straight from the chips


@pytest.mark.workflow
def test_workflow_dag_errors(tmp_path: Path) -> None:
    both = reference_config()
    both["regions"] = {
        "r": {
            "crs": "EPSG:32632",
            "bounds": [0, 5e6, 20000, 5.01e6],
            "resolution_m": 10,
            "years": [2015],
        }
    }
    both["datasets"] = {"alps": {"members": ["r_2015"]}}
    proc = snakemake(
        _workdir(tmp_path / "both", both), "-n", "tables/alps_benchmark.md", check=False
    )
    assert proc.returncode != 0
    assert "glaciermap: error: datasets: alps and reference: alps: one name" in proc.stderr
    proc = snakemake(
        _workdir(tmp_path / "nofile", reference_config()),
        "-n",
        "tables/alps_benchmark.md",
        check=False,
    )
    assert proc.returncode != 0
    assert "glaciermap: missing input: reference: alps: no train.hdf5 in ref/alps/" in proc.stderr
    nosar = reference_config()
    nosar["reference"]["alps"]["channels"] = [*ALPS_CHANNELS[:8], None, None, None]
    wd = _workdir(tmp_path / "nosar", nosar)
    write_reference(wd / "ref/alps")
    proc = snakemake(wd, "-n", "tables/alps_benchmark.md", check=False)
    assert proc.returncode != 0
    assert "reference: alps: feature set 'optical_dem_sar' (benchmark (rf)) needs" in proc.stderr
