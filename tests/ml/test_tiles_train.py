from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ml.chips import BUFFER, IGNORE, SPLIT_CODES, TileSource, assign_blocks, make_tiles
from glaciermap.ml.features import VALID
from glaciermap.ml.models import build_cnn
from glaciermap.ml.train import (
    CnnParams,
    Jitter,
    PatchSampler,
    RfParams,
    dihedral,
    load_tiles,
    masked_loss,
    normalisation_stats,
    pixel_groups,
    resolve_device,
    train_cnn,
    train_rf,
    tune_rf,
)


@given(
    st.integers(1, 12), st.integers(1, 12), st.floats(0, 0.4), st.floats(0, 0.4), st.integers(0, 99)
)
def test_assign_blocks_partition(nr: int, nc: int, val: float, test: float, seed: int) -> None:
    split = assign_blocks(nr, nc, val, test, seed)
    assert split.shape == (nr, nc)
    assert set(np.unique(split)) <= {"train", "val", "test"}
    assert (split == "train").any()
    assert np.array_equal(split, assign_blocks(nr, nc, val, test, seed))  # deterministic
    n = nr * nc
    held = (split != "train").ravel()
    if n >= 3 and held.any():
        # exactly one held-out block in each run of the serpentine path
        path = np.arange(n).reshape(nr, nc)
        path[1::2] = path[1::2, ::-1]
        edges = np.linspace(0, n, held.sum() + 1).round().astype(int)
        on_path = held[path.ravel()]
        assert [on_path[a:b].sum() for a, b in itertools.pairwise(edges)] == [1] * held.sum()


@pytest.mark.parametrize("seed", range(10))
def test_assign_blocks_spreads_test_and_val(seed: int) -> None:
    """The 30 m test region's 4 x 6 blocks: 4 test and 4 val blocks, one of each per block
    row (a plain shuffle left one row without any held-out block and clustered the test)."""
    split = assign_blocks(4, 6, 0.15, 0.15, seed)
    assert (split == "test").sum() == 4 and (split == "val").sum() == 4
    assert ((split == "test").sum(axis=1) == 1).all()
    assert ((split == "val").sum(axis=1) == 1).all()


def _toy_dataset(tmp_path: Path, size: int = 128, buffer_px: int = 4) -> Path:
    """Features whose first layer says 'glacier' (bright) where the label is 1."""
    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, size * 20, size * 20), 20)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    lab = (((yy - 40) ** 2 + (xx - 50) ** 2) < 30**2) | (((yy - 100) ** 2 + (xx - 90) ** 2) < 20**2)
    f1 = lab * 0.8 + rng.normal(0, 0.05, lab.shape)
    f2 = rng.normal(0, 1, lab.shape)
    names = ["blue", "green", "red", "nir", "swir1", "swir2", "ndsi", "ndwi"]
    layers = [f1 + 0.01 * i for i in range(6)] + [f1, f2]
    valid = np.ones(lab.shape)
    valid[:4, :4] = 0
    feats = np.stack([*layers, valid]).astype(np.float32)
    write_raster(tmp_path / "f.tif", feats, g, [*names, VALID], nodata=np.nan)
    write_raster(tmp_path / "l.tif", lab.astype(np.uint8), g, ["glacier"])
    out = tmp_path / "tiles"
    make_tiles(
        [TileSource("toy", 2020, tmp_path / "f.tif", tmp_path / "l.tif")],
        out,
        tile_size=32,
        block_tiles=1,
        seed=1,
        buffer_px=buffer_px,
    )
    return out


# Small CNN settings for the toy dataset (64 patches an epoch, no early stop before the end).
FAST = {"batch_size": 4, "base_channels": 8, "depth": 2, "patches_per_epoch": 64}


def test_make_tiles_outputs(tmp_path: Path) -> None:
    out = _toy_dataset(tmp_path)
    index = pd.read_csv(out / "index.csv")
    x = np.load(out / "features.npy")
    y = np.load(out / "labels.npy")
    assert x.shape == (16, 8, 32, 32) and y.shape == (16, 32, 32)
    assert set(index["split"]) == {"train", "val", "test"}
    assert (y[0, :4, :4] == IGNORE).all()  # invalid pixels are ignored
    # Chip bounds tile the region without overlap.
    assert (index["right"] - index["left"]).eq(640).all()
    # The pixel store holds every pixel with its split; buffers only inside train blocks.
    split = np.load(out / "area_split.npy")
    assert np.load(out / "area_features.npy").shape == (8, 128 * 128) and split.shape == (
        128 * 128,
    )
    assert set(np.unique(split)) == {*SPLIT_CODES.values(), BUFFER}


def test_tiles_cover_a_region_that_is_not_a_multiple_of_the_chip(tmp_path: Path) -> None:
    """Edges are padded: a 120 px region gives 4 x 4 chips of 32 px, none of the region lost."""
    out = _toy_dataset(tmp_path, size=120)
    index = pd.read_csv(out / "index.csv")
    assert len(index) == 16 and index["row"].max() == 3
    y = np.load(out / "labels.npy")
    last = index[(index["row"] == 3) & (index["col"] == 3)].index[0]
    assert (y[last, 24:, :] == IGNORE).all() and (y[last, :, 24:] == IGNORE).all()  # padding
    assert (y[last, :24, :24] != IGNORE).all()  # real pixels of the last chip


def test_buffer_keeps_train_pixels_away_from_held_out_blocks(tmp_path: Path) -> None:
    out = _toy_dataset(tmp_path, buffer_px=6)
    split = np.load(out / "area_split.npy").reshape(128, 128)
    held = (split == SPLIT_CODES["val"]) | (split == SPLIT_CODES["test"])
    rows, cols = np.nonzero(split == SPLIT_CODES["train"])
    hr, hc = np.nonzero(held)
    # Chessboard distance from every train pixel to every held-out pixel exceeds the buffer.
    d = np.maximum(abs(rows[:, None] - hr[None]), abs(cols[:, None] - hc[None])).min(axis=1)
    assert d.min() > 6
    assert (split == BUFFER).sum() > 0


def test_patch_sampler_draws_inside_the_train_area(tmp_path: Path) -> None:
    ts = load_tiles(_toy_dataset(tmp_path), "optical")
    sampler = PatchSampler(ts, 32, 0.5)
    pos = sampler.draw(500, np.random.default_rng(0))
    assert len({tuple(p) for p in pos}) > 100  # many distinct patches from 16 chips
    x, y = sampler.read(pos[:20])
    assert x.shape == (20, 8, 32, 32) and y.shape == (20, 32, 32)
    _, _, split = ts.member(0)
    for (_, r, c), lab in zip(pos[:20], y, strict=True):
        win = split[r : r + 32, c : c + 32]
        assert (win == SPLIT_CODES["train"]).mean() >= 0.5
        assert (lab[win != SPLIT_CODES["train"]] == IGNORE).all()  # only train labels teach


def test_normalisation_stats_ignore_nan() -> None:
    # (N=2, C=2, 2, 1): channel 0 holds 1, NaN, 3, 5; channel 1 is constant.
    x = np.array(
        [[[[1.0], [np.nan]], [[7.0], [7.0]]], [[[3.0], [5.0]], [[7.0], [7.0]]]], np.float32
    )
    mean, std = normalisation_stats(x)
    assert mean[0] == pytest.approx(3.0) and std[0] == pytest.approx(np.sqrt(8 / 3))
    assert mean[1] == pytest.approx(7.0) and std[1] == 1.0  # constant layer: no division by 0


def test_dihedral_group() -> None:
    x = torch.arange(16.0).reshape(1, 4, 4)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8


def test_jitter_changes_whole_patches_consistently() -> None:
    layers = [
        "blue",
        "nir",
        "ndsi",
        "brightness",
        "brightness_std_5",
        "elevation",
        "slope",
        "sar_copol_db",
        "sar_copol_coherence",
    ]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (64, len(layers), 4, 4)).astype(np.float32)
    x[:, 5] = 4000.0
    x[:, 7] = -10.0
    out = Jitter(layers, 0.1, 200.0, 1.0)(x.copy(), np.random.default_rng(1))
    gain = out[:, 0] / x[:, 0]
    # one factor per patch, shared by every reflectance-like layer
    for i in (1, 3, 4):
        np.testing.assert_allclose(out[:, i] / x[:, i], gain, rtol=1e-5)
    assert np.ptp(gain.reshape(64, -1), axis=1).max() < 1e-5
    assert 0.05 < np.log(gain[:, 0, 0]).std() < 0.15
    # ratios, slope and coherence untouched; elevation and SAR shifted by a per-patch offset
    for i in (2, 6, 8):
        np.testing.assert_array_equal(out[:, i], x[:, i])
    assert 100 < (out[:, 5, 0, 0] - 4000).std() < 300
    assert 0.5 < (out[:, 7, 0, 0] + 10).std() < 1.5
    # off: nothing drawn, nothing changed
    assert not Jitter(layers, 0.0, 0.0, 0.0)


def test_masked_loss_ignores_pixels() -> None:
    logits = torch.zeros(1, 4, 4)
    t = torch.ones(1, 4, 4, dtype=torch.uint8)
    t2 = t.clone()
    t2[0, 0, 0] = IGNORE
    logits2 = logits.clone()
    logits2[0, 0, 0] = -100.0  # would be a huge loss if counted
    assert float(masked_loss(logits2, t2, 1.0)) < float(masked_loss(logits, t, 1.0)) + 0.1


@pytest.mark.parametrize("arch", ["unet", "segnet", "deeplabv3plus"])
def test_network_shapes_and_gradients(arch: str) -> None:
    net = build_cnn(arch, 5, base=4, depth=2)
    x = torch.randn(2, 5, 32, 48)
    y = net(x)
    assert y.shape == (2, 1, 32, 48)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    net.eval()
    with torch.no_grad():  # one sample at a time gives the same logits in eval mode
        assert torch.allclose(net(x[:1]), net(x)[:1], atol=1e-5)


@pytest.mark.parametrize("arch", ["segnet", "deeplabv3plus"])
def test_other_networks_learn(tmp_path: Path, arch: str) -> None:
    tiles = _toy_dataset(tmp_path)
    p = CnnParams(epochs=12, patience=20, lr=5e-3, **FAST)
    res = train_cnn(tiles, "optical", arch, tmp_path / arch, p)
    assert res["best_val_miou"][0] > 0.7, res


def test_device_auto() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_train_cnn_learns_resumes_and_loads_safely(tmp_path: Path) -> None:
    tiles = _toy_dataset(tmp_path)
    out = tmp_path / "m"
    p = CnnParams(epochs=12, patience=20, lr=5e-3, **FAST)
    res = train_cnn(tiles, "optical", "unet", out, p)
    assert res["best_val_miou"][0] > 0.7
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == 12 and hist["val_miou"].between(0, 1).all()
    state = torch.load(out / "weights.pt", weights_only=True)["members"][0]
    assert any(k.startswith("head") for k in state)


def test_ensemble_trains_one_member_per_seed(tmp_path: Path) -> None:
    tiles = _toy_dataset(tmp_path)
    out = tmp_path / "m"
    p = CnnParams(epochs=2, ensemble=2, min_epochs=1, **{**FAST, "base_channels": 4})
    res = train_cnn(tiles, "optical", "unet", out, p)
    members = torch.load(out / "weights.pt", weights_only=True)["members"]
    assert len(members) == 2 and len(res["best_val_miou"]) == 2
    k = next(iter(members[0]))
    assert not torch.equal(members[0][k], members[1][k])  # different seeds
    assert sorted(set(pd.read_csv(out / "history.csv")["member"])) == [0, 1]


def test_warmup_then_cosine() -> None:
    from glaciermap.ml.train import lr_factor

    f = [lr_factor(e, 20, 2) for e in range(20)]
    assert f[0] < f[1] < f[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[2:])) and f[-1] > 0.05


def test_train_cnn_resumes_after_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import glaciermap.ml.train as tr

    tiles = _toy_dataset(tmp_path)
    out = tmp_path / "m"
    p = CnnParams(epochs=8, patience=20, **{**FAST, "base_channels": 4})
    uninterrupted = tmp_path / "u"
    train_cnn(tiles, "optical", "unet", uninterrupted, p)
    real = tr.predict_tiles
    calls = {"n": 0}

    def dying(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("job killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "predict_tiles", dying)
    with pytest.raises(RuntimeError, match="killed"):
        train_cnn(tiles, "optical", "unet", out, p)
    done = torch.load(out / "checkpoint_0.pt", weights_only=True)["history"]
    assert [r["epoch"] for r in json.loads(done)] == [0, 1, 2]
    calls["n"] = -100
    train_cnn(tiles, "optical", "unet", out, p)
    assert calls["n"] == -100 + 5  # only epochs 3..7 ran again
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == list(range(8))
    # The resumed run restored the random generators: the same weights as without the kill.
    a = torch.load(out / "weights.pt", weights_only=True)["members"][0]
    b = torch.load(uninterrupted / "weights.pt", weights_only=True)["members"][0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Other settings do not resume from this checkpoint.
    calls["n"] = -100
    train_cnn(tiles, "optical", "unet", out, CnnParams(**{**p.__dict__, "lr": 1e-3}))
    assert calls["n"] == -100 + 8


def test_sigterm_stops_after_a_checkpoint_and_resumes_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLURM sends SIGTERM before a time-limit kill or preemption: training writes the
    epoch's checkpoint, stops with one clear error, and the rerun ends as if uninterrupted."""
    import os
    import signal

    import glaciermap.ml.train as tr

    tiles = _toy_dataset(tmp_path)
    p = CnnParams(epochs=5, patience=20, **{**FAST, "base_channels": 4})
    uninterrupted = tmp_path / "u"
    train_cnn(tiles, "optical", "unet", uninterrupted, p)
    real, calls = tr.predict_tiles, {"n": 0}

    def terminating(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # during epoch 1's validation
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "predict_tiles", terminating)
    out = tmp_path / "m"
    with pytest.raises(tr.TrainingInterrupted, match="SIGTERM after member 0 epoch 1") as exc:
        train_cnn(tiles, "optical", "unet", out, p)
    assert "\n" not in str(exc.value) and str(out) in str(exc.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again
    done = torch.load(out / "checkpoint_0.pt", weights_only=True)["history"]
    assert [r["epoch"] for r in json.loads(done)] == [0, 1]
    assert not (out / "weights.pt").exists()
    train_cnn(tiles, "optical", "unet", out, p)
    a = torch.load(out / "weights.pt", weights_only=True)["members"][0]
    b = torch.load(uninterrupted / "weights.pt", weights_only=True)["members"][0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_rf(tmp_path: Path) -> None:
    tiles = _toy_dataset(tmp_path)
    res = train_rf(tiles, "optical", tmp_path / "rf", RfParams(n_estimators=10, max_samples=5000))
    assert res["val_iou"] > 0.6
    assert (tmp_path / "rf" / "model.skops").exists()


def test_pixel_groups_follow_blocks(tmp_path: Path) -> None:
    ts = load_tiles(_toy_dataset(tmp_path), "optical")  # 128 px, 32 px chips
    flat = np.array([0, 63, 64, 127, 64 * 128, 128 * 128 - 1])  # row-major pixel positions
    g = pixel_groups(ts, flat, 2)  # blocks of 2 x 2 chips = 64 px
    assert g[0] == g[1] != g[2] == g[3] and g[4] not in g[:4] and len(set(g)) == 4


def test_rf_tuning_picks_by_grouped_cv() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    groups = np.repeat(np.arange(8), n // 8)
    y = (rng.random(n) < 0.5).astype(np.uint8)
    clean = y + rng.normal(0, 0.3, n)  # informative everywhere
    noise = rng.normal(0, 1, n)
    x = np.stack([clean, noise], axis=1).astype(np.float32)
    p = RfParams(tune_max_depth=(1, None), tune_min_samples_leaf=(1, 50), tune_n_estimators=20)
    depth, leaf, table = tune_rf(x, y, groups, p)
    assert [(r["max_depth"], r["min_samples_leaf"]) for r in table] == [
        (1, 1),
        (1, 50),
        (None, 1),
        (None, 50),
    ]
    assert all(0.8 < r["cv_iou"] < 1 for r in table)
    assert all(0.6 < r["cv_miou"] < 1 for r in table)
    best = max(table, key=lambda r: r["cv_miou"])
    assert (depth, leaf) == (best["max_depth"], best["min_samples_leaf"])
    # Too few groups to fold: the configured values come back untouched.
    assert tune_rf(x, y, np.zeros(n, np.int64), p)[:2] == (p.max_depth, p.min_samples_leaf)


def test_chips_too_small_for_the_network_are_refused(tmp_path: Path) -> None:
    from glaciermap.core.errors import ConfigError

    tiles = _toy_dataset(tmp_path)  # 32 px chips
    p = CnnParams(epochs=1, base_channels=4, depth=6)  # U-Net with 6 poolings wants 64 px
    with pytest.raises(ConfigError, match="chips of 32 px do not suit unet"):
        train_cnn(tiles, "optical", "unet", tmp_path / "m", p)


def test_train_rf_writes_cv_table(tmp_path: Path) -> None:
    tiles = _toy_dataset(tmp_path)
    p = RfParams(n_estimators=10, max_samples=5000, tune_max_depth=(3, None), group_tiles=2)
    res = train_rf(tiles, "optical", tmp_path / "rf", p)
    cv = pd.read_csv(tmp_path / "rf" / "rf_cv.csv")
    assert len(cv) == 2 * 3 and cv["cv_miou"].between(0, 1).all()
    assert res["cv_miou"] == pytest.approx(cv["cv_miou"].max())
    assert res["val_iou"] > 0.6


def test_training_rejects_missing_layer(tmp_path: Path) -> None:
    """A feature set that needs the DEM, on a dataset without it: one clear message."""
    from glaciermap.core.errors import MissingLayerError

    tiles = _toy_dataset(tmp_path)
    with pytest.raises(MissingLayerError, match="elevation"):
        train_cnn(tiles, "optical_dem", "unet", tmp_path / "m", CnnParams(epochs=1))


def test_rerun_after_outputs_deleted_restores_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snakemake deletes a job's outputs before rerunning it; the checkpoint still has the
    best weights, and regenerated tiles are never resumed from a stale checkpoint."""
    tiles = _toy_dataset(tmp_path)
    out = tmp_path / "m"
    p = CnnParams(epochs=3, **{**FAST, "base_channels": 4})
    train_cnn(tiles, "optical", "unet", out, p)
    best = torch.load(out / "weights.pt", weights_only=True)["members"][0]
    for name in ("weights.pt", "norm.json", "config.json", "history.csv"):
        (out / name).unlink()
    train_cnn(tiles, "optical", "unet", out, p)  # resumes: nothing left to train
    again = torch.load(out / "weights.pt", weights_only=True)["members"][0]
    assert all(torch.equal(best[k], again[k]) for k in best)
    assert len(pd.read_csv(out / "history.csv")) == 3
    # New tiles (same settings): a fresh training, not a resume.
    st = (tiles / "index.csv").stat()
    os.utime(tiles / "index.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    import glaciermap.ml.train as tr

    calls = {"n": 0}
    real = tr.predict_tiles

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(tr, "predict_tiles", counting)
    train_cnn(tiles, "optical", "unet", out, p)
    assert calls["n"] == 3


def test_registry_is_in_step_with_the_implementations() -> None:
    """The parse-time registry names exactly the networks and feature sets that exist."""
    from glaciermap import registry
    from glaciermap.ml.features import FEATURE_SETS
    from glaciermap.ml.models import CNN_ARCHS

    assert registry.CNN_ARCHS == tuple(CNN_ARCHS)
    assert set(registry.FEATURESETS) == set(FEATURE_SETS)


def _schema_defaults(*keys: str) -> dict[str, object]:
    import yaml
    from workflow_helpers import REPO

    node = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    for k in keys:
        node = node["properties"][k]
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v}


@pytest.mark.parametrize(
    ("section", "fn"),
    [
        (("training", "cnn"), "CnnParams"),
        (("training", "rf"), "RfParams"),
        (("polygonize",), "polygonize_probability"),
    ],
)
def test_code_defaults_are_the_schema_defaults(section: tuple[str, ...], fn: str) -> None:
    """The schema is the one source of defaults: the parameter classes and functions that
    take a section's keys default to exactly the schema's values and know every key."""
    import dataclasses
    import inspect

    import glaciermap.ml.train as tr
    from glaciermap.products import outlines

    schema = _schema_defaults(*section)
    if fn.endswith("Params"):
        code = {f.name: f.default for f in dataclasses.fields(getattr(tr, fn))}
    else:
        sig = inspect.signature(getattr(outlines, fn))
        code = {k: p.default for k, p in sig.parameters.items()}
    for key, default in schema.items():
        assert key in code, f"{fn} does not take {'.'.join(section)}.{key}"
        value = list(code[key]) if isinstance(code[key], tuple) else code[key]
        assert value == default, f"{'.'.join(section)}.{key}: schema {default!r}, code {value!r}"


def test_forest_files_never_run_code(tmp_path: Path) -> None:
    """The forest is saved with skops and loaded with an explicit list of trusted types: a
    file holding anything else is refused before any object is built, and a pickle left
    from older versions is never loaded."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    from glaciermap.core.errors import InputDataError, MissingInputError
    from glaciermap.ml.train import load_forest

    x = np.random.default_rng(0).uniform(size=(200, 3))
    clf = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, x[:, 0] > 0.5)
    good = tmp_path / "model.skops"
    skops.io.dump(clf, good)
    assert (load_forest(good).predict_proba(x) == clf.predict_proba(x)).all()

    evil = tmp_path / "evil" / "model.skops"
    evil.parent.mkdir()
    skops.io.dump({"forest": clf, "payload": os.system}, evil)  # a call target
    with pytest.raises(InputDataError, match=r"evil/model.skops: holds types .*refusing"):
        load_forest(evil)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(InputDataError, match="not a readable skops forest"):
        load_forest(tmp_path / "bad" / "model.skops")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.joblib").write_bytes(b"pickle")
    with pytest.raises(MissingInputError, match="pickle, which is never loaded"):
        load_forest(tmp_path / "old" / "model.skops")


def test_chip_store_streams_and_trains_in_less_memory_than_it_holds(tmp_path: Path) -> None:
    """The chips and pixel store are written window by window (same bytes for any window
    size), and cutting and training never hold the store: numpy's peak heap use stays far
    below the store's size (memory maps are paged, not allocated)."""
    import tracemalloc

    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 16000, 12800), 10.0)  # 1600 x 1280 px
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, g.shape).astype(np.float32)
    lab = (base > 0.6).astype(np.uint8)
    names = ["blue", "green", "red", "nir", "swir1", "swir2", "ndsi", "ndwi"]
    feats = np.stack([base + 0.01 * i for i in range(8)] + [np.ones(g.shape, np.float32)])
    feats[:, 500:530, 300:900] = np.nan  # invalid across chips
    feats[-1, 500:530, 300:900] = 0
    write_raster(tmp_path / "f.tif", feats, g, [*names, VALID], nodata=np.nan)
    write_raster(tmp_path / "l.tif", lab, g, ["glacier"])
    del feats, base, lab
    src = [TileSource("big", 2020, tmp_path / "f.tif", tmp_path / "l.tif")]
    kw = {"tile_size": 64, "block_tiles": 2, "seed": 3, "buffer_px": 8}
    tracemalloc.start()
    make_tiles(src, tmp_path / "a", chunk_px=256, **kw)
    _, cut_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    make_tiles(src, tmp_path / "b", chunk_px=4096, **kw)
    for f in ("features.npy", "labels.npy", "area_features.npy", "area_split.npy", "index.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    store = sum((tmp_path / "a" / f).stat().st_size for f in ("features.npy", "area_features.npy"))
    assert store > 120e6
    assert cut_peak < store / 5, (cut_peak, store)

    tracemalloc.start()
    p = CnnParams(epochs=1, min_epochs=1, **FAST)
    train_cnn(tmp_path / "a", "optical", "unet", tmp_path / "m", p)
    _, train_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert train_peak < store / 2, (train_peak, store)


@pytest.mark.parametrize("trainer", ["rf", "cnn"])
def test_train_pixels_of_one_class_are_one_line(tmp_path: Path, trainer: str) -> None:
    """Train pixels without background (a small region whose buffer around the held-out
    blocks leaves only ice): one line with the counts and the keys to change, not a model
    that calls everything glacier."""
    out = _toy_dataset(tmp_path)
    labels = np.load(out / "area_labels.npy", mmap_mode="r+")
    labels[labels == 0] = 1  # every labelled pixel glacier
    labels.flush()
    del labels
    with pytest.raises(InputDataError, match=r"train pixels are \d+ glacier and 0 background"):
        if trainer == "rf":
            train_rf(out, "optical", tmp_path / "m", RfParams(tune=False, n_estimators=5))
        else:
            train_cnn(out, "optical", "unet", tmp_path / "m", CnnParams(epochs=1, **FAST))
    assert not (tmp_path / "m").exists()
