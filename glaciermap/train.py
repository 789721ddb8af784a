"""Training: random forest (scikit-learn) and CNNs (PyTorch) on the tiles of a dataset.

* Normalisation statistics (per-layer mean and standard deviation) come from the train
  split only; missing values become 0 after normalisation (the layer mean).
* CNNs: dihedral augmentation (8 rotations/flips), class-imbalance aware loss (BCE with a
  positive weight from the train class ratio, plus soft Dice), early stopping on validation
  IoU, a checkpoint after every epoch that a rerun with the same settings resumes from,
  fixed seeds, ``device: auto`` picks CUDA when present.
* Random forest: balanced sample of valid train pixels, class weights ``balanced``.

Every model directory holds ``norm.json`` (layers, mean, std), ``history.csv`` and
``config.json`` (what was used, with the package version).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch import nn

from glaciermap import __version__
from glaciermap.errors import ConfigError, InputDataError
from glaciermap.evaluate import confusion_metrics, metrics_from_counts
from glaciermap.features import feature_indices
from glaciermap.io import PathLike, atomic_path, read_json, write_json
from glaciermap.models import build_cnn
from glaciermap.tiles import IGNORE

log = logging.getLogger(__name__)


@dataclass
class CnnParams:
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 6
    base_channels: int = 16
    depth: int = 3
    seed: int = 0
    device: str = "auto"
    max_pos_weight: float = 10.0


@dataclass
class RfParams:
    n_estimators: int = 100
    max_depth: int | None = 20
    min_samples_leaf: int = 5
    max_samples: int = 200_000
    seed: int = 0
    # Tuning of max_depth x min_samples_leaf by spatially grouped cross-validation on the
    # train split (groups: blocks of group_tiles x group_tiles chips); the chosen values
    # replace max_depth and min_samples_leaf.
    tune: bool = True
    tune_max_depth: tuple[int | None, ...] = (10, 20, None)
    tune_min_samples_leaf: tuple[int, ...] = (1, 5, 20)
    tune_folds: int = 3
    tune_n_estimators: int = 50
    tune_max_samples: int = 50_000
    group_tiles: int = 3


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TileSet:
    x: NDArray[np.float32]  # (N, C, T, T), NaN where invalid
    y: NDArray[np.uint8]  # (N, T, T), IGNORE where invalid
    index: pd.DataFrame
    layers: list[str]


def load_tiles(tiles_dir: PathLike, featureset: str) -> TileSet:
    """The dataset's chips restricted to a feature set's layers."""
    d = Path(tiles_dir)
    meta = read_json(d / "meta.json")
    idx = feature_indices(meta["layers"], featureset, f"{d}/meta.json")
    x = np.load(d / "features.npy", mmap_mode="r")
    y = np.load(d / "labels.npy")
    index = pd.read_csv(d / "index.csv")
    layers = [meta["layers"][i] for i in idx]
    return TileSet(np.ascontiguousarray(x[:, idx]), y, index, layers)


def normalisation_stats(x: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-layer mean and std over finite values of ``x`` (N, C, ...)."""
    flat = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    mean = np.nanmean(flat, axis=1)
    std = np.nanstd(flat, axis=1)
    return mean, np.where(std > 1e-12, std, 1.0)


def normalise(x: NDArray[np.float32], mean: NDArray[Any], std: NDArray[Any]) -> NDArray[np.float32]:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    z = (x - mean.reshape(shape)) / std.reshape(shape)
    return np.nan_to_num(z, nan=0.0).astype(np.float32)


def _split(ts: TileSet, name: str) -> NDArray[np.int64]:
    return np.flatnonzero(ts.index["split"].to_numpy() == name)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 symmetries of the square, applied to the last two axes."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def masked_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """BCE (positive-weighted) + soft Dice over pixels whose target is not IGNORE."""
    valid = target != IGNORE
    t = torch.where(valid, target, torch.zeros_like(target)).float()
    w = valid.float()
    bce = nn.functional.binary_cross_entropy_with_logits(
        logits,
        t,
        weight=w,
        pos_weight=torch.tensor(pos_weight, device=logits.device),
        reduction="sum",
    ) / w.sum().clamp(min=1.0)
    p = torch.sigmoid(logits) * w
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + (t * w).sum() + 1)
    return bce + dice


def _config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tiles_fingerprint(tiles_dir: PathLike) -> str:
    """Identity of a tile set (size and mtime of its files): regenerated tiles differ."""
    d = Path(tiles_dir)
    parts = []
    for name in ("features.npy", "labels.npy", "index.csv", "meta.json"):
        st = (d / name).stat()
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _write_common(
    out: Path,
    layers: list[str],
    mean: Any,
    std: Any,
    cfg: dict[str, Any],
    history: list[dict[str, Any]],
) -> None:
    write_json(
        {"layers": layers, "mean": list(map(float, mean)), "std": list(map(float, std))},
        out / "norm.json",
    )
    write_json(cfg, out / "config.json")
    with atomic_path(out / "history.csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)


def predict_tiles(
    model: nn.Module, x: NDArray[np.float32], device: torch.device, batch_size: int = 8
) -> NDArray[np.float32]:
    """Probabilities (N, T, T) for normalised chips (N, C, T, T)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i : i + batch_size]).to(device)
            out.append(torch.sigmoid(model(xb))[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *x.shape[2:]), np.float32)


def train_cnn(
    tiles_dir: PathLike,
    featureset: str,
    arch: str,
    out_dir: PathLike,
    params: CnnParams | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Train a CNN; writes ``weights.pt`` (best state_dict), norm/history/config. Returns
    the best validation metrics."""
    p = params or CnnParams()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(p.seed)
    torch.set_num_threads(max(1, threads))
    device = resolve_device(p.device)
    log.info(
        "device %s (CUDA available: %s, CUDA_VISIBLE_DEVICES=%s)",
        device,
        torch.cuda.is_available(),
        os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
    )
    ts = load_tiles(tiles_dir, featureset)
    tr, va = _split(ts, "train"), _split(ts, "val")
    if len(tr) == 0 or len(va) == 0:
        raise InputDataError(
            f"{tiles_dir}: need train and val tiles (have {len(tr)} / {len(va)}); "
            "use a larger region or a smaller tiles.tile_size / block_tiles"
        )
    mean, std = normalisation_stats(ts.x[tr])
    xtr, xva = normalise(ts.x[tr], mean, std), normalise(ts.x[va], mean, std)
    ytr, yva = ts.y[tr], ts.y[va]
    pos = float((ytr == 1).sum())
    neg = float((ytr == 0).sum())
    pos_weight = float(np.clip(neg / max(pos, 1.0), 1.0, p.max_pos_weight))
    cfg = {
        "arch": arch,
        "featureset": featureset,
        "layers": ts.layers,
        "params": asdict(p),
        "n_train": len(tr),
        "n_val": len(va),
        "pos_weight": pos_weight,
        "glaciermap_version": __version__,
        "tiles": str(tiles_dir),
    }
    # Resume only from a checkpoint of the same settings *and* the same tiles.
    chash = _config_hash({**cfg, "tiles_fingerprint": tiles_fingerprint(tiles_dir)})
    model = build_cnn(arch, len(ts.layers), base=p.base_channels, depth=p.depth).to(device)
    tile, div = int(ts.x.shape[-1]), int(getattr(model, "divisor", 1))
    min_tile = int(getattr(model, "min_tile", div))
    if tile % div or tile < min_tile:
        raise ConfigError(
            f"{tiles_dir}: chips of {tile} px do not suit {arch} with depth {p.depth} (needs a "
            f"multiple of {div}, at least {min_tile} px); change datasets: tile_size or "
            "training: cnn: depth"
        )
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, p.epochs))
    history: list[dict[str, Any]] = []
    best, best_epoch, start, stopped = -1.0, -1, 0, False
    best_state: dict[str, torch.Tensor] | None = None
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state.get("config_hash") == chash:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, best, best_epoch = (
                int(state["epoch"]) + 1,
                float(state["best"]),
                int(state["best_epoch"]),
            )
            best_state, stopped = state["best_state"], bool(state["stopped"])
            history = json.loads(state["history"])
            log.info("resuming %s from epoch %d (best IoU %.3f)", out, start, best)
        else:
            log.info("ignoring %s: it belongs to other settings or tiles", ckpt)
    rng = np.random.default_rng(p.seed + start)
    log.info(
        "training %s on %s: %d train / %d val tiles, %d layers, device %s, pos_weight %.2f",
        arch,
        featureset,
        len(tr),
        len(va),
        len(ts.layers),
        device,
        pos_weight,
    )
    for epoch in range(start, p.epochs):
        if stopped:
            break
        t0 = time.time()
        model.train()
        losses = []
        order = rng.permutation(len(tr))
        for i in range(0, len(order), p.batch_size):
            b = order[i : i + p.batch_size]
            k = int(rng.integers(8))
            xb = dihedral(torch.from_numpy(xtr[b]), k).to(device)
            yb = dihedral(torch.from_numpy(ytr[b]), k).to(device)
            opt.zero_grad()
            loss = masked_loss(model(xb)[:, 0], yb, pos_weight)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            losses.append(loss.item())
        sched.step()
        prob = predict_tiles(model, xva, device, p.batch_size)
        m = confusion_metrics(prob >= 0.5, yva == 1, yva != IGNORE)
        row = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "val_iou": m["iou"],
            "val_f1": m["f1"],
            "val_accuracy": m["accuracy"],
            "seconds": time.time() - t0,
        }
        history.append(row)
        log.info(
            "epoch %d: loss %.4f val IoU %.4f (%.1f s)",
            epoch,
            row["train_loss"],
            m["iou"],
            row["seconds"],
        )
        if m["iou"] > best:
            best, best_epoch = m["iou"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        stopped = epoch - best_epoch >= p.patience
        _write_common(  # after every epoch, to follow progress
            out,
            ts.layers,
            mean,
            std,
            {**cfg, "best_epoch": best_epoch, "best_val_iou": best},
            history,
        )
        with atomic_path(ckpt) as tmp:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": epoch,
                    "best": best,
                    "best_epoch": best_epoch,
                    "config_hash": chash,
                    "best_state": best_state,
                    "stopped": stopped,
                    "history": json.dumps(history),
                },
                tmp,
            )
        if stopped:
            log.info("early stopping at epoch %d (best %d)", epoch, best_epoch)
    if best_state is None:  # no epoch ran (epochs: 0)
        best_state = model.state_dict()
    with atomic_path(out / "weights.pt") as tmp:
        torch.save(best_state, tmp)
    _write_common(
        out, ts.layers, mean, std, {**cfg, "best_epoch": best_epoch, "best_val_iou": best}, history
    )
    return {"best_val_iou": best, "best_epoch": best_epoch}


def spatial_groups(index: pd.DataFrame, group_tiles: int) -> NDArray[np.int64]:
    """A group id per chip: chips of one region/year in one block of ``group_tiles`` x
    ``group_tiles`` chips share it, so a cross-validation fold never splits a block."""
    g = max(1, group_tiles)
    keys = list(
        zip(
            index["region"].astype(str),
            index["year"].astype(int),
            index["row"].astype(int) // g,
            index["col"].astype(int) // g,
            strict=True,
        )
    )
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.asarray([ids[k] for k in keys], dtype=np.int64)


def _forest(
    n_estimators: int, max_depth: int | None, min_samples_leaf: int, seed: int, threads: int
) -> Any:
    """The random forest of :func:`train_rf` and :func:`tune_rf` (class-balanced weights)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        class_weight="balanced",
        n_jobs=max(1, threads),
        random_state=seed,
    )


def tune_rf(
    x: NDArray[np.float32],
    y: NDArray[np.uint8],
    groups: NDArray[np.int64],
    p: RfParams,
    threads: int = 1,
) -> tuple[int | None, int, list[dict[str, Any]]]:
    """Choose ``max_depth`` and ``min_samples_leaf`` by grouped k-fold cross-validation:
    mean IoU of the held-out folds (pixels of whole spatial blocks). Returns the best pair
    and the table of all candidates. Too few groups for two folds: the configured values."""
    from sklearn.model_selection import GroupKFold

    folds = min(p.tune_folds, len(np.unique(groups)))
    if folds < 2:
        log.warning(
            "random forest: %d spatial group(s), too few to tune; keeping the config", folds
        )
        return p.max_depth, p.min_samples_leaf, []
    rng = np.random.default_rng(p.seed + 1)
    sub = rng.permutation(len(y))[: p.tune_max_samples]
    x, y, groups = x[sub], y[sub], groups[sub]
    table: list[dict[str, Any]] = []
    for depth in p.tune_max_depth:
        for leaf in p.tune_min_samples_leaf:
            t0 = time.time()
            counts = dict.fromkeys(("tp", "fp", "fn", "tn"), 0)
            for fit_idx, test_idx in GroupKFold(n_splits=folds).split(x, y, groups):
                clf = _forest(p.tune_n_estimators, depth, leaf, p.seed, threads)
                clf.fit(x[fit_idx], y[fit_idx])
                truth = y[test_idx] == 1
                m = confusion_metrics(clf.predict(x[test_idx]) == 1, truth)
                for k in counts:
                    counts[k] += int(m[k])
            iou = float(np.nan_to_num(metrics_from_counts(**counts)["iou"]))  # no ice: 0
            table.append(
                {
                    "max_depth": depth,
                    "min_samples_leaf": leaf,
                    "cv_iou": iou,
                    "seconds": time.time() - t0,
                }
            )
            log.info(
                "random forest CV (%d grouped folds): max_depth %s, min_samples_leaf %d: IoU %.4f",
                folds,
                depth,
                leaf,
                iou,
            )
    best = max(table, key=lambda r: r["cv_iou"])
    log.info(
        "random forest: chose max_depth %s, min_samples_leaf %d (CV IoU %.4f)",
        best["max_depth"],
        best["min_samples_leaf"],
        best["cv_iou"],
    )
    return best["max_depth"], int(best["min_samples_leaf"]), table


def train_rf(
    tiles_dir: PathLike,
    featureset: str,
    out_dir: PathLike,
    params: RfParams | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Train a random forest on a balanced pixel sample; writes ``model.joblib``."""
    p = params or RfParams()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ts = load_tiles(tiles_dir, featureset)
    tr, va = _split(ts, "train"), _split(ts, "val")
    if len(tr) == 0:
        raise InputDataError(f"{tiles_dir}: no train tiles")
    mean, std = normalisation_stats(ts.x[tr])
    rng = np.random.default_rng(p.seed)

    def pixels(
        sel: NDArray[np.int64], limit: int
    ) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.int64]]:
        """A class-balanced pixel sample of the tiles ``sel``: features, labels, tile row."""
        x = np.moveaxis(ts.x[sel], 1, -1).reshape(-1, len(ts.layers))
        y = ts.y[sel].reshape(-1)
        ok = np.flatnonzero(y != IGNORE)
        pos, neg = ok[y[ok] == 1], ok[y[ok] == 0]
        half = limit // 2
        take = np.concatenate(
            [
                rng.choice(pos, min(half, len(pos)), replace=False),
                rng.choice(neg, min(half, len(neg)), replace=False),
            ]
        )
        tile = sel[take // (ts.y.shape[1] * ts.y.shape[2])]
        return normalise(x[take], mean, std), y[take], tile

    xtr, ytr, tile_tr = pixels(tr, p.max_samples)
    max_depth, min_leaf = p.max_depth, p.min_samples_leaf
    cv: list[dict[str, Any]] = []
    if p.tune:
        groups = spatial_groups(ts.index, p.group_tiles)[tile_tr]
        max_depth, min_leaf, cv = tune_rf(xtr, ytr, groups, p, threads)
        pd.DataFrame(cv).to_csv(out / "rf_cv.csv", index=False)
    clf = _forest(p.n_estimators, max_depth, min_leaf, p.seed, threads)
    t0 = time.time()
    clf.fit(xtr, ytr)
    history: list[dict[str, Any]] = [
        {
            "n_train_pixels": len(ytr),
            "seconds": time.time() - t0,
            "max_depth": max_depth,
            "min_samples_leaf": min_leaf,
            "cv_iou": max((r["cv_iou"] for r in cv), default=float("nan")),
        }
    ]
    if len(va):
        xv = normalise(np.moveaxis(ts.x[va], 1, -1).reshape(-1, len(ts.layers)), mean, std)
        yv = ts.y[va].reshape(-1)
        m = confusion_metrics(clf.predict(xv) == 1, yv == 1, yv != IGNORE)
        history[0].update(val_iou=m["iou"], val_f1=m["f1"], val_accuracy=m["accuracy"])
        log.info("random forest: val IoU %.4f", m["iou"])
    with atomic_path(out / "model.joblib") as tmp:
        joblib.dump(clf, tmp)
    cfg = {
        "arch": "rf",
        "featureset": featureset,
        "layers": ts.layers,
        "params": asdict(p),
        "glaciermap_version": __version__,
        "tiles": str(tiles_dir),
    }
    _write_common(out, ts.layers, mean, std, cfg, history)
    return history[0]
