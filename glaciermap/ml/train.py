"""Training: random forest (scikit-learn) and CNNs (PyTorch) on a dataset's pixel store.

* Both models learn only from train pixels of the store (``glaciermap.ml.chips``): pixels of
  train blocks farther than the buffer from any held-out block. Normalisation statistics
  (per-layer mean and standard deviation) come from those pixels only; missing values become 0
  after normalisation (the layer mean).
* CNNs: every epoch draws ``patches_per_epoch`` patches at random positions inside the train
  area (a patch needs ``min_train_fraction`` of train pixels; other pixels are ignored by the
  loss), each with one of the 8 dihedral symmetries, so a small region still yields thousands
  of distinct samples. Loss: BCE with a positive weight from the train class ratio plus soft
  Dice. Learning rate: linear warm-up, then cosine decay. Model selection and early stopping on
  the validation chips' mIoU (mean of glacier and background IoU), which, unlike glacier IoU,
  does not reward over-predicting glacier; neither acts before ``min_epochs``. ``ensemble: k``
  trains k seeds whose probabilities prediction averages (their spread is an uncertainty). The model
  validated and kept is an exponential moving average of the weights (``ema``). A checkpoint
  after every epoch (with the random generators' states) lets an identical rerun resume;
  ``device: auto`` picks CUDA when present.
* Random forest: balanced sample of train pixels, class weights ``balanced``, hyper-parameters
  tuned by cross-validation with folds of whole spatial blocks.
* Both take the feature set's layers plus, when ``derived`` is on, the derived layers
  (brightness, band ratios, texture) computable from them
  (:func:`glaciermap.ml.features.model_layers`).

Every model directory holds ``norm.json`` (layers, mean, std), ``history.csv`` and
``config.json`` (what was used, with the package version).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io
import torch
from numpy.typing import NDArray
from torch import nn

from glaciermap import __version__
from glaciermap.core.errors import (
    ConfigError,
    GlacierMapError,
    InputDataError,
    MissingInputError,
)
from glaciermap.core.io import PathLike, atomic_path, read_json, write_json
from glaciermap.ingest.names import LAYER_COPOL_DB, LAYER_CROSSPOL_DB
from glaciermap.ingest.optical import COMMON_NAMES
from glaciermap.ml.chips import IGNORE, SPLIT_CODES
from glaciermap.ml.features import model_layers
from glaciermap.ml.models import build_cnn
from glaciermap.products.metrics import (
    COUNT_KEYS,
    add_confusion,
    confusion_metrics,
    metrics_from_counts,
)

log = logging.getLogger(__name__)


RF_FILE = "model.skops"
"""The random forest's file: skops format, loaded without executing code (never a pickle)."""
RF_TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)
"""Types beyond skops' defaults (scikit-learn estimators, numpy) a forest file may hold."""


def load_forest(path: PathLike) -> Any:
    """The random forest saved by :func:`train_rf`, loaded with skops: only scikit-learn's
    forest and tree types and numpy arrays are built, no code in the file runs; a file holding
    any other type is refused."""
    p = Path(path)
    if not p.exists():
        legacy = p.with_name("model.joblib")
        hint = (
            f" ({legacy.name} beside it is a pickle, which is never loaded: it could run code)"
            if legacy.exists()
            else ""
        )
        raise MissingInputError(f"{p}: trained forest not found{hint}; rerun training")
    try:
        untrusted = [t for t in skops.io.get_untrusted_types(file=p) if t not in RF_TRUSTED_TYPES]
        if untrusted:
            raise InputDataError(
                f"{p}: holds types {untrusted} that a glaciermap forest never contains; "
                "refusing to load it (retrain, or check where the file came from)"
            )
        return skops.io.load(p, trusted=list(RF_TRUSTED_TYPES))
    except InputDataError:
        raise
    except Exception as exc:
        raise InputDataError(
            f"{p}: not a readable skops forest ({type(exc).__name__}: {exc}); rerun training"
        ) from exc


@dataclass
class CnnParams:
    """CNN training settings (defaults: see schemas/config.schema.yaml)."""

    epochs: int = 80
    min_epochs: int = 12
    warmup_epochs: int = 2
    patches_per_epoch: int = 512
    min_train_fraction: float = 0.5
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 16
    base_channels: int = 16
    depth: int = 3
    seed: int = 0
    ensemble: int = 1
    ema: float = 0.99
    derived: bool = True
    device: str = "auto"
    max_pos_weight: float = 10.0
    # Radiometric augmentation per patch (0 = off): see Jitter and the schema's reasons.
    jitter_gain: float = 0.1
    jitter_elevation_m: float = 200.0
    jitter_sar_db: float = 1.0


@dataclass
class RfParams:
    """Random-forest settings (defaults: see schemas/config.schema.yaml)."""

    n_estimators: int = 100
    max_depth: int | None = 20
    min_samples_leaf: int = 5
    max_samples: int = 200_000
    seed: int = 0
    derived: bool = True
    # Tuning of max_depth x min_samples_leaf by spatially grouped cross-validation on the
    # train pixels (groups: blocks of group_tiles x group_tiles chips); the chosen values
    # replace max_depth and min_samples_leaf.
    tune: bool = True
    tune_max_depth: tuple[int | None, ...] = (10, 20, None)
    tune_min_samples_leaf: tuple[int, ...] = (1, 5, 20)
    tune_folds: int = 3
    tune_n_estimators: int = 50
    tune_max_samples: int = 50_000
    group_tiles: int = 3


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` through a file handle: the archive's inner folder is then "archive",
    not the (temporary) file name, so identical weights give identical bytes."""
    with open(path, "wb") as fh:
        torch.save(obj, fh)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TileSet:
    """A dataset's fixed chips (validation and test) and its pixel store (training), restricted
    to a model's layers. Arrays of the store are memory-mapped: nothing region-sized is read
    until a patch or a pixel sample asks for it."""

    x_all: NDArray[np.float32]  # (N, C_all, T, T) chips of every layer (memory map)
    y: NDArray[np.uint8]  # (N, T, T), IGNORE where invalid
    index: pd.DataFrame
    layers: list[str]
    layer_idx: list[int]  # positions of ``layers`` in the store
    area_x: NDArray[np.float32]  # (C_all, P) memory map
    area_y: NDArray[np.uint8]  # (P,)
    area_split: NDArray[np.uint8]  # (P,)
    members: list[dict[str, Any]]
    tile_size: int

    def chips(self, ids: NDArray[np.int64]) -> NDArray[np.float32]:
        """The model's layers of chips ``ids`` (n, C, T, T), read from the memory map."""
        return np.asarray(self.x_all[ids][:, self.layer_idx], dtype=np.float32)

    def member(self, k: int) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.uint8]]:
        """Views (C_all, H, W), (H, W), (H, W) of member ``k`` of the store."""
        m = self.members[k]
        h, w, off = int(m["height"]), int(m["width"]), int(m["offset"])
        sl = slice(off, off + h * w)
        return (
            self.area_x[:, sl].reshape(-1, h, w),
            self.area_y[sl].reshape(h, w),
            self.area_split[sl].reshape(h, w),
        )

    def train_label_chunks(self, chunk: int = 1 << 20) -> Iterator[tuple[int, NDArray[np.uint8]]]:
        """(offset, labels) chunks of the store with everything but train pixels set to
        IGNORE: the whole store in bounded memory."""
        for a in range(0, len(self.area_y), chunk):
            y, split = self.area_y[a : a + chunk], self.area_split[a : a + chunk]
            yield a, np.where(split == SPLIT_CODES["train"], y, IGNORE).astype(np.uint8)

    def train_counts(self) -> tuple[int, int]:
        """(glacier, background) train pixels of the store."""
        pos = neg = 0
        for _, lab in self.train_label_chunks():
            pos, neg = pos + int((lab == 1).sum()), neg + int((lab == 0).sum())
        return pos, neg

    def require_both_classes(self, tiles_dir: PathLike) -> tuple[int, int]:
        """:meth:`train_counts`, or one line when the train pixels lack glacier or background:
        a model fitted on one class predicts it everywhere (a small region whose buffer
        around the val/test blocks leaves only the ice, say)."""
        pos, neg = self.train_counts()
        if pos + neg and not (pos and neg):
            raise InputDataError(
                f"{tiles_dir}: the train pixels are {pos} glacier and {neg} background (train "
                "blocks less the buffer_px band around val/test blocks); a model needs both: "
                "enlarge the region, lower datasets: NAME: buffer_px or block_tiles, or change "
                "its seed"
            )
        return pos, neg


def load_tiles(tiles_dir: PathLike, featureset: str, derived: bool = False) -> TileSet:
    """The dataset's chips and pixel store, restricted to the model's layers."""
    d = Path(tiles_dir)
    meta = read_json(d / "meta.json")
    layers = model_layers(featureset, meta["layers"], derived)
    idx = [meta["layers"].index(n) for n in layers]
    x = _load_npy(d / "features.npy", mmap=True)
    y = _load_npy(d / "labels.npy", mmap=False)
    index = pd.read_csv(d / "index.csv")
    return TileSet(
        x,
        y,
        index,
        layers,
        idx,
        _load_npy(d / "area_features.npy", mmap=True),
        _load_npy(d / "area_labels.npy", mmap=True),
        _load_npy(d / "area_split.npy", mmap=True),
        list(meta["members"]),
        int(meta["tile_size"]),
    )


def _load_npy(path: Path, mmap: bool) -> Any:
    """An array of a chip store (memory-mapped if ``mmap``), with a one-line error when the
    file is missing or cut short."""
    if not path.exists():
        raise MissingInputError(
            f"{path}: part of the chip store is missing; delete {path.parent} and rerun its "
            "tiles step"
        )
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as exc:
        raise InputDataError(
            f"{path}: not a readable array ({exc}); the chip store is truncated or corrupt: "
            f"delete {path.parent} and rerun its tiles step"
        ) from exc


def train_pixel_sample(
    ts: TileSet,
    limit: int,
    rng: np.random.Generator,
    balanced: bool = True,
) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.int64]]:
    """A (class-balanced) sample of labelled train pixels: raw features (n, C), labels (n,)
    and flat store positions (n,), in store order. Drawn as ranks among the glacier and the
    background train pixels, then located chunk by chunk, so memory depends on ``limit``,
    not on the store."""
    npos, nneg = ts.train_counts()
    if balanced:
        half = limit // 2
        pos_rank = np.sort(rng.choice(npos, min(half, npos), replace=False))
        neg_rank = np.sort(rng.choice(nneg, min(half, nneg), replace=False))
    else:
        r = rng.choice(npos + nneg, min(limit, npos + nneg), replace=False)
        pos_rank, neg_rank = np.sort(r[r < npos]), np.sort(r[r >= npos] - npos)
    takes, seen = [], [0, 0]
    for a, lab in ts.train_label_chunks():
        for cls, ranks in ((1, pos_rank), (0, neg_rank)):
            where = np.flatnonzero(lab == cls)
            lo, hi = np.searchsorted(ranks, [seen[cls], seen[cls] + len(where)])
            takes.append(a + where[ranks[lo:hi] - seen[cls]])
            seen[cls] += len(where)
    take = np.sort(np.concatenate(takes)) if takes else np.zeros(0, np.int64)
    x = np.stack([ts.area_x[i, take] for i in ts.layer_idx], axis=1).astype(np.float32)
    y = np.where(ts.area_split[take] == SPLIT_CODES["train"], ts.area_y[take], IGNORE)
    return x, y.astype(np.uint8), take


def pixel_groups(ts: TileSet, flat: NDArray[np.int64], group_tiles: int) -> NDArray[np.int64]:
    """A spatial group per store pixel: member and block of ``group_tiles`` x ``group_tiles``
    chips, so a cross-validation fold never splits a block."""
    size = max(1, group_tiles) * ts.tile_size
    out = np.zeros(len(flat), dtype=np.int64)
    base = 0
    for m in ts.members:
        h, w, off = int(m["height"]), int(m["width"]), int(m["offset"])
        inside = (flat >= off) & (flat < off + h * w)
        local = flat[inside] - off
        gcols = -(-w // size)
        out[inside] = base + (local // w) // size * gcols + (local % w) // size
        base += -(-h // size) * gcols
    return out


class PatchSampler:
    """Random patch positions inside a store's train area.

    Candidate top-left corners lie on a lattice of step ``patch // 8``; a candidate is kept when
    at least ``min_train_fraction`` of its patch is labelled train pixels. A draw picks a
    candidate uniformly and jitters it within one lattice step (kept only if the jittered patch
    still has the fraction, else the lattice point is used), so every train pixel can be
    anywhere in a patch.
    """

    def __init__(self, ts: TileSet, patch: int, min_train_fraction: float):
        self.ts, self.patch = ts, patch
        self.step = max(1, patch // 8)
        self.min_count = min_train_fraction * patch * patch
        cands: list[NDArray[np.int64]] = []
        for k in range(len(ts.members)):
            _, y, split = ts.member(k)
            h, w = y.shape
            if h < patch or w < patch:
                continue
            # Train pixels per lattice patch from running column sums over the patch's rows:
            # each store row is read twice, memory is one row of counts.
            colsum = np.zeros(w, dtype=np.int64)
            top = 0
            for r in range(0, h - patch + 1, self.step):
                while top < r + patch:
                    colsum += self._ok(y[top], split[top])
                    top += 1
                if r > 0:
                    for q in range(r - self.step, r):
                        colsum -= self._ok(y[q], split[q])
                run = np.concatenate([[0], np.cumsum(colsum)])
                c = np.arange(0, w - patch + 1, self.step)
                keep = c[(run[c + patch] - run[c]) >= self.min_count]
                cands.append(np.stack([np.full(len(keep), k), np.full(len(keep), r), keep], axis=1))
        self.candidates = np.concatenate(cands) if cands else np.zeros((0, 3), np.int64)

    @staticmethod
    def _ok(y: NDArray[np.uint8], split: NDArray[np.uint8]) -> NDArray[np.int64]:
        return ((split == SPLIT_CODES["train"]) & (y != IGNORE)).astype(np.int64)

    def __len__(self) -> int:
        return len(self.candidates)

    def draw(self, n: int, rng: np.random.Generator) -> NDArray[np.int64]:
        """``n`` positions (member, row, col)."""
        pick = self.candidates[rng.integers(len(self.candidates), size=n)].copy()
        jitter = rng.integers(self.step, size=(n, 2))
        t = self.patch
        for i, (k, r0, c0) in enumerate(pick):
            _, y, split = self.ts.member(int(k))
            r = min(r0 + jitter[i, 0], y.shape[0] - t)
            c = min(c0 + jitter[i, 1], y.shape[1] - t)
            win = np.s_[r : r + t, c : c + t]
            if self._ok(y[win], split[win]).sum() >= self.min_count:
                pick[i, 1], pick[i, 2] = r, c
        return pick

    def read(self, positions: NDArray[np.int64]) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
        """Raw features (B, C, T, T) and train labels (B, T, T) of the patches."""
        t = self.patch
        xs, ys = [], []
        for k, r, c in positions:
            x, y, split = self.ts.member(int(k))
            win = np.s_[int(r) : int(r) + t, int(c) : int(c) + t]
            xs.append(x[(self.ts.layer_idx, *win)])
            lab = np.where(split[win] == SPLIT_CODES["train"], y[win], IGNORE)
            ys.append(lab.astype(np.uint8))
        return np.stack(xs).astype(np.float32), np.stack(ys)


class Jitter:
    """Per-patch radiometric augmentation of raw (unnormalised) layers, the differences between
    scenes, years and regions that a model trained on one of them must tolerate:

    * ``gain``: reflectance-like layers (the optical bands, brightness and its texture) times
      ``exp(N(0, gain))``, one factor per patch: illumination, atmosphere and calibration move
      whole scenes by ~5-15 %; band ratios and normalised differences do not change with a
      common gain, so they are left as they are;
    * ``elevation_m``: ``elevation`` plus ``N(0, elevation_m)`` metres: the snow line and the
      glacier termini lie hundreds of metres apart between years and neighbouring regions, so a
      network should not learn one absolute altitude threshold;
    * ``sar_db``: the backscatter layers (dB) plus ``N(0, sar_db)``: absolute calibration and
      incidence-angle differences between tracks are of the order of 1 dB.
    """

    def __init__(self, layers: list[str], gain: float, elevation_m: float, sar_db: float):
        def idx(pred: Any) -> NDArray[np.int64]:
            return np.array([i for i, n in enumerate(layers) if pred(n)], dtype=np.int64)

        self.groups = [
            (idx(lambda n: n in COMMON_NAMES or n.startswith("brightness")), gain, True),
            (idx(lambda n: n == "elevation"), elevation_m, False),
            (idx(lambda n: n in (LAYER_COPOL_DB, LAYER_CROSSPOL_DB)), sar_db, False),
        ]
        self.groups = [g for g in self.groups if g[1] > 0 and len(g[0])]

    def __bool__(self) -> bool:
        return bool(self.groups)

    def __call__(self, x: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
        """``x`` (patches, layers, h, w), changed in place and returned."""
        for index, sd, multiplicative in self.groups:
            shift = rng.normal(0.0, sd, size=(len(x), 1, 1, 1)).astype(np.float32)
            if multiplicative:
                x[:, index] *= np.exp(shift)
            else:
                x[:, index] += shift
        return x


def normalisation_stats(x: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-layer mean and std over finite values of ``x`` (N, C, ...)."""
    flat = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    mean = np.nanmean(flat, axis=1)
    std = np.nanstd(flat, axis=1)
    return mean, np.where(std > 1e-12, std, 1.0)


def normalise(x: NDArray[np.float32], mean: NDArray[Any], std: NDArray[Any]) -> NDArray[np.float32]:
    """``x`` (N, C, ...) standardised per layer with ``mean`` and ``std``; NaN becomes 0."""
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


def lr_factor(epoch: int, epochs: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` epochs, then cosine decay to
    5 % at the last epoch."""
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    span = max(1, epochs - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - warmup) / span)))


class WeightAverage:
    """Exponential moving average of a model's weights (and batch-norm statistics), the model
    that is validated and kept: it smooths the step-to-step noise of small batches, so the
    chosen epoch depends less on luck. The decay ramps up as ``min(decay, (1 + t) / (10 + t))``
    so short trainings are not dominated by the initial weights; ``decay`` 0 keeps the raw
    weights."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.steps = decay, 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model: nn.Module) -> None:
        """Fold ``model``'s current weights into the average (integer buffers are copied)."""
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if v.dtype.is_floating_point:
                    self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    self.state[k].copy_(v)


@dataclass
class ValChips:
    """The validation chips of a store, read from its memory map and normalised a batch at a
    time, so validating holds one batch, not the validation set."""

    ts: TileSet
    ids: NDArray[np.int64]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, size: int) -> Iterator[tuple[NDArray[np.float32], NDArray[np.uint8]]]:
        """(normalised chips, labels) of ``size`` chips at a time."""
        for i in range(0, len(self.ids), size):
            b = self.ids[i : i + size]
            yield normalise(self.ts.chips(b), self.mean, self.std), self.ts.y[b]

    def scores(
        self,
        predict: Callable[[NDArray[np.float32], NDArray[np.bool_]], NDArray[np.bool_]],
        size: int,
    ) -> dict[str, float]:
        """Validation metrics (``miou`` chooses the model) over every chip, counted batch by
        batch; ``predict(x, labelled)`` gives the glacier mask of the labelled pixels of the
        normalised chips ``x``. NaN-free: an undefined IoU counts 0."""
        c = dict.fromkeys(COUNT_KEYS, 0)
        for x, y in self.batches(size):
            ok = y != IGNORE
            add_confusion(c, predict(x, ok), (y == 1)[ok])
        m = metrics_from_counts(c["tp"], c["fp"], c["fn"], c["tn"])
        return {k: float(np.nan_to_num(m[k])) for k in ("iou", "iou_background", "miou", "f1")}


@dataclass
class _Fit:
    """What training one ensemble member leaves: best weights, history, best epoch."""

    state: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    best: float
    best_epoch: int


class TrainingInterrupted(GlacierMapError):
    """SIGTERM during CNN training (what SLURM sends before a time-limit kill or preemption):
    training stopped after writing the epoch's checkpoint; a rerun resumes from it."""


@contextmanager
def _sigterm_requests() -> Iterator[Callable[[], bool]]:
    """While training, SIGTERM only raises a flag (returned as a callable) that the epoch loop
    checks after writing its checkpoint, instead of killing the process mid-epoch. SLURM
    sends SIGTERM ``KillWait`` (default 30 s) before SIGKILL; an epoch longer than that is
    cut by the SIGKILL, and the previous epoch's checkpoint is resumed as after any kill."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False  # signal handlers can only be set from the main thread
        return
    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        yield lambda: bool(got)
    finally:
        signal.signal(signal.SIGTERM, old)


def _fit_member(
    ts: TileSet,
    arch: str,
    p: CnnParams,
    member: int,
    sampler: PatchSampler,
    norm: tuple[NDArray[np.float64], NDArray[np.float64]],
    pos_weight: float,
    val: ValChips,
    device: torch.device,
    ckpt: Path,
    chash: str,
    terminated: Callable[[], bool] = lambda: False,
) -> _Fit:
    """Train one ensemble member (seed ``p.seed + member``), resuming from its checkpoint;
    after an epoch's checkpoint, :class:`TrainingInterrupted` if ``terminated()``."""
    seed = p.seed + member
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_cnn(arch, len(ts.layers), base=p.base_channels, depth=p.depth).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: lr_factor(e, p.epochs, p.warmup_epochs)
    )
    history: list[dict[str, Any]] = []
    best, best_epoch, start, stopped = -1.0, -1, 0, False
    best_state: dict[str, torch.Tensor] | None = None
    average = WeightAverage(model, p.ema)
    shadow = build_cnn(arch, len(ts.layers), base=p.base_channels, depth=p.depth).to(device)
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
            rng.bit_generator.state = json.loads(state["numpy_rng"])
            average.state, average.steps = state["ema_state"], int(state["ema_steps"])
            torch.set_rng_state(state["torch_rng"])
            log.info("member %d: resuming from epoch %d (best mIoU %.3f)", member, start, best)
        else:
            log.info("ignoring %s: it belongs to other settings or tiles", ckpt)
    mean, std = norm
    jitter = Jitter(ts.layers, p.jitter_gain, p.jitter_elevation_m, p.jitter_sar_db)
    log.info(
        "member %d (seed %d): %d patch positions, %d patches of %d px per epoch",
        member,
        seed,
        len(sampler),
        p.patches_per_epoch,
        ts.tile_size,
    )
    for epoch in range(start, p.epochs):
        if stopped:
            break
        t0 = time.time()
        model.train()
        losses = []
        positions = sampler.draw(p.patches_per_epoch, rng)
        for i in range(0, len(positions), p.batch_size):
            xb_raw, yb_raw = sampler.read(positions[i : i + p.batch_size])
            if jitter:
                xb_raw = jitter(xb_raw, rng)
            k = int(rng.integers(8))
            xb = dihedral(torch.from_numpy(normalise(xb_raw, mean, std)), k).to(device)
            yb = dihedral(torch.from_numpy(yb_raw), k).to(device)
            opt.zero_grad()
            loss = masked_loss(model(xb)[:, 0], yb, pos_weight)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            average.update(model)
            losses.append(loss.item())
        sched.step()
        shadow.load_state_dict(average.state)
        m = val.scores(
            lambda x, ok: (predict_tiles(shadow, x, device, p.batch_size) >= 0.5)[ok],
            p.batch_size,
        )
        row = {
            "member": member,
            "epoch": epoch,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": float(np.mean(losses)),
            "val_iou": m["iou"],
            "val_iou_background": m["iou_background"],
            "val_miou": m["miou"],
            "val_f1": m["f1"],
        }
        history.append(row)
        log.info(
            "member %d epoch %d: loss %.4f val mIoU %.4f (glacier %.4f, background %.4f) %.1f s",
            member,
            epoch,
            row["train_loss"],
            m["miou"],
            m["iou"],
            m["iou_background"],
            time.time() - t0,
        )
        # Selection only from min_epochs on: a few validation chips can score an epoch of
        # the warm-up as high as the trained model (seen on the demo: best epoch 1 of 20, test
        # mIoU .901 against .939-.947 for the other seeds), and such a model transfers worse.
        if epoch + 1 >= min(p.min_epochs, p.epochs) and m["miou"] > best:
            best, best_epoch = m["miou"], epoch
            best_state = {k: v.detach().clone() for k, v in average.state.items()}
        stopped = epoch + 1 >= p.min_epochs and epoch - best_epoch >= p.patience
        with atomic_path(ckpt) as tmp:
            save_torch(
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
                    "numpy_rng": json.dumps(rng.bit_generator.state),
                    "torch_rng": torch.get_rng_state(),
                    "ema_state": average.state,
                    "ema_steps": average.steps,
                },
                tmp,
            )
        if terminated():
            raise TrainingInterrupted(
                f"{ckpt.parent}: training stopped by SIGTERM after member {member} epoch "
                f"{epoch}, whose checkpoint {ckpt.name} is written; run the job again (or let "
                "SLURM requeue it) to resume from there"
            )
        if stopped:
            log.info("member %d: early stopping at epoch %d (best %d)", member, epoch, best_epoch)
    if best_state is None:  # no epoch ran (epochs: 0)
        best_state = average.state
    return _Fit(best_state, history, best, best_epoch)


def train_cnn(
    tiles_dir: PathLike,
    featureset: str,
    arch: str,
    out_dir: PathLike,
    params: CnnParams | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Train a CNN ensemble (``params.ensemble`` seeds); writes ``weights.pt`` (the best
    state_dict of each member, ``{"members": [...]}``), norm/history/config. Returns the best
    validation mIoU per member."""
    p = params or CnnParams()
    out = Path(out_dir)
    torch.set_num_threads(max(1, threads))
    device = resolve_device(p.device)
    log.info(
        "device %s (CUDA available: %s, CUDA_VISIBLE_DEVICES=%s)",
        device,
        torch.cuda.is_available(),
        os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
    )
    ts = load_tiles(tiles_dir, featureset, p.derived)
    va = _split(ts, "val")
    npos, nneg = ts.require_both_classes(tiles_dir)
    pos, neg = float(npos), float(nneg)
    if pos + neg == 0 or len(va) == 0:
        raise InputDataError(
            f"{tiles_dir}: need train pixels and val chips (have {int(pos + neg)} / {len(va)}); "
            "use a larger region or smaller datasets: tile_size / block_tiles"
        )
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(p.seed)
    sample, _, _ = train_pixel_sample(ts, 500_000, rng, balanced=False)
    mean, std = normalisation_stats(sample)
    val = ValChips(ts, va, mean, std)
    pos_weight = float(np.clip(neg / max(pos, 1.0), 1.0, p.max_pos_weight))
    cfg = {
        "arch": arch,
        "featureset": featureset,
        "layers": ts.layers,
        "params": asdict(p),
        "n_train_pixels": int(pos + neg),
        "n_val": len(va),
        "pos_weight": pos_weight,
        "glaciermap_version": __version__,
        "tiles": str(tiles_dir),
    }
    # Resume only from a checkpoint of the same settings *and* the same tiles.
    chash = _config_hash({**cfg, "tiles_fingerprint": tiles_fingerprint(tiles_dir)})
    probe = build_cnn(arch, len(ts.layers), base=p.base_channels, depth=p.depth)
    tile, div = ts.tile_size, int(getattr(probe, "divisor", 1))
    min_tile = int(getattr(probe, "min_tile", div))
    if tile % div or tile < min_tile:
        raise ConfigError(
            f"{tiles_dir}: chips of {tile} px do not suit {arch} with depth {p.depth} (needs a "
            f"multiple of {div}, at least {min_tile} px); change datasets: tile_size or "
            "training: cnn: depth"
        )
    log.info(
        "training %s on %s: %d train pixels, %d val chips, %d layers %s, pos_weight %.2f",
        arch,
        featureset,
        int(pos + neg),
        len(va),
        len(ts.layers),
        ts.layers,
        pos_weight,
    )
    sampler = PatchSampler(ts, ts.tile_size, p.min_train_fraction)  # shared by the members
    if not len(sampler):
        raise InputDataError(
            f"{tiles_dir}: no {ts.tile_size} px patch has {p.min_train_fraction:.0%} train "
            "pixels; lower training: cnn: min_train_fraction or datasets: tile_size"
        )
    with _sigterm_requests() as terminated:
        fits = [
            _fit_member(
                ts,
                arch,
                p,
                k,
                sampler,
                (mean, std),
                pos_weight,
                val,
                device,
                out / f"checkpoint_{k}.pt",
                chash,
                terminated,
            )
            for k in range(p.ensemble)
        ]
    with atomic_path(out / "weights.pt") as tmp:
        save_torch({"members": [f.state for f in fits]}, tmp)
    summary = {
        "best_epoch": [f.best_epoch for f in fits],
        "best_val_miou": [f.best for f in fits],
    }
    _write_common(
        out, ts.layers, mean, std, {**cfg, **summary}, [r for f in fits for r in f.history]
    )
    return summary


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
    mIoU (glacier and background) of the held-out folds (pixels of whole spatial blocks).
    Returns the best pair and the table of all candidates. Too few groups for two folds: the
    configured values."""
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
            cvm = metrics_from_counts(**counts)
            iou = float(np.nan_to_num(cvm["miou"]))  # undefined: 0
            table.append(
                {
                    "max_depth": depth,
                    "min_samples_leaf": leaf,
                    "cv_miou": iou,
                    "cv_iou": float(np.nan_to_num(cvm["iou"])),
                    "seconds": time.time() - t0,
                }
            )
            log.info(
                "random forest CV (%d grouped folds): max_depth %s, min_samples_leaf %d: mIoU %.4f",
                folds,
                depth,
                leaf,
                iou,
            )
    best = max(table, key=lambda r: r["cv_miou"])
    log.info(
        "random forest: chose max_depth %s, min_samples_leaf %d (CV mIoU %.4f)",
        best["max_depth"],
        best["min_samples_leaf"],
        best["cv_miou"],
    )
    return best["max_depth"], int(best["min_samples_leaf"]), table


def train_rf(
    tiles_dir: PathLike,
    featureset: str,
    out_dir: PathLike,
    params: RfParams | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Train a random forest on a balanced sample of train pixels; writes ``model.skops``."""
    p = params or RfParams()
    out = Path(out_dir)
    ts = load_tiles(tiles_dir, featureset, p.derived)
    va = _split(ts, "val")
    ts.require_both_classes(tiles_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(p.seed)
    xraw, ytr, flat = train_pixel_sample(ts, p.max_samples, rng)
    if len(ytr) == 0:
        raise InputDataError(f"{tiles_dir}: no labelled train pixels")
    mean, std = normalisation_stats(xraw)
    xtr = normalise(xraw, mean, std)
    max_depth, min_leaf = p.max_depth, p.min_samples_leaf
    cv: list[dict[str, Any]] = []
    if p.tune:
        groups = pixel_groups(ts, flat, p.group_tiles)
        max_depth, min_leaf, cv = tune_rf(xtr, ytr, groups, p, threads)
        with atomic_path(out / "rf_cv.csv") as tmp:
            pd.DataFrame(cv).to_csv(tmp, index=False)
    clf = _forest(p.n_estimators, max_depth, min_leaf, p.seed, threads)
    t0 = time.time()
    clf.fit(xtr, ytr)
    history: list[dict[str, Any]] = [
        {
            "n_train_pixels": len(ytr),
            "seconds": time.time() - t0,
            "max_depth": max_depth,
            "min_samples_leaf": min_leaf,
            "cv_miou": max((r["cv_miou"] for r in cv), default=float("nan")),
        }
    ]
    if len(va):
        m = ValChips(ts, va, mean, std).scores(
            lambda x, ok: clf.predict(np.moveaxis(x, 1, -1)[ok]) == 1, 16
        )
        history[0].update(val_iou=m["iou"], val_miou=m["miou"], val_f1=m["f1"])
        log.info("random forest: val mIoU %.4f (glacier IoU %.4f)", m["miou"], m["iou"])
    with atomic_path(out / RF_FILE) as tmp:
        skops.io.dump(clf, tmp)
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
