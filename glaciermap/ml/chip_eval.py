"""Pixel metrics of a trained model on the chips of one split of a chip store, predicted
straight from the store (no feature stack, no raster): how the reference course's test
split is scored (:mod:`glaciermap.ingest.reference`).

Each chip is predicted on its own (a CNN sees the chip, the forest its pixels), normalised
with the model's statistics; chips are read from the memory map a batch at a time and the
confusion counts accumulated batch by batch, so memory is one batch whatever the split's
size. The JSON has the keys of every evaluation (:func:`glaciermap.products.metrics.
metrics_from_counts`: accuracy, precision, recall, f1, iou, iou_background, miou,
all_glacier_*, counts) and, for a CNN ensemble, each member's metrics (``seeds``,
``seed_miou_mean``, ``seed_miou_sd``) as :func:`glaciermap.products.metrics.metrics_with_seeds`
gives them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from glaciermap.core.errors import ConfigError, InputDataError, MissingLayerError
from glaciermap.core.io import PathLike, read_json, write_json
from glaciermap.ml.chips import IGNORE, SPLITS
from glaciermap.ml.predict import LoadedModel, load_model
from glaciermap.ml.train import normalise
from glaciermap.products.metrics import COUNT_KEYS, Counts, add_confusion, metrics_with_seeds

log = logging.getLogger(__name__)


def chip_probabilities(lm: LoadedModel, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Glacier probability of normalised chips ``x`` (B, C, T, T): (members, B, T, T) for a
    CNN (one row per ensemble member), (1, B, T, T) for the forest."""
    if lm.forest is not None:
        flat = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
        classes = list(lm.forest.classes_)
        p = (
            lm.forest.predict_proba(flat)[:, classes.index(1)]
            if 1 in classes
            else np.zeros(len(flat))
        )
        return p.reshape(1, x.shape[0], *x.shape[2:]).astype(np.float32)
    with torch.no_grad():
        xb = torch.from_numpy(np.ascontiguousarray(x)).to(lm.device)
        return np.stack([torch.sigmoid(net(xb))[:, 0].cpu().numpy() for net in lm.nets])


def evaluate_chips(
    tiles_dir: PathLike,
    model_dir: PathLike,
    dest: PathLike,
    split: str = "test",
    threshold: float = 0.5,
    batch_size: int = 8,
    device: str = "auto",
    threads: int = 1,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of the model in ``model_dir`` on the ``split`` chips of the store in
    ``tiles_dir`` (pixels whose label is not ``IGNORE``); writes them as JSON to ``dest``."""
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} unknown; choose one of {list(SPLITS)}")
    torch.set_num_threads(max(1, threads))
    d = Path(tiles_dir)
    meta = read_json(d / "meta.json")
    lm = load_model(model_dir, device)
    missing = [n for n in lm.layers if n not in meta["layers"]]
    if missing:
        raise MissingLayerError(
            f"{d}: the chips have no layer(s) {missing} that the model {model_dir} was trained "
            f"on (they have {meta['layers']}); evaluate a model trained on this dataset"
        )
    idx = [meta["layers"].index(n) for n in lm.layers]
    x = np.load(d / "features.npy", mmap_mode="r")
    y = np.load(d / "labels.npy", mmap_mode="r")
    index = pd.read_csv(d / "index.csv")
    ids = np.flatnonzero(index["split"].to_numpy() == split)
    if not len(ids):
        raise InputDataError(f"{d / 'index.csv'}: no {split} chip; rebuild the dataset's tiles")
    names = ["probability"]
    if len(lm.nets) > 1:
        names += [f"probability_member_{k}" for k in range(len(lm.nets))]
    totals: dict[str, Counts] = {n: dict.fromkeys(COUNT_KEYS, 0) for n in names}
    for i in range(0, len(ids), batch_size):
        b = ids[i : i + batch_size]
        xb = normalise(np.asarray(x[b][:, idx], dtype=np.float32), lm.mean, lm.std)
        yb = np.asarray(y[b])
        ok = yb != IGNORE
        truth = yb[ok] == 1
        prob = chip_probabilities(lm, xb)
        add_confusion(totals["probability"], prob.mean(axis=0)[ok] >= threshold, truth)
        for k in range(len(names) - 1):
            add_confusion(totals[names[k + 1]], prob[k][ok] >= threshold, truth)
    out: dict[str, Any] = {
        **metrics_with_seeds(totals),
        "split": split,
        "n_chips": len(ids),
        "threshold": threshold,
        "source": str(model_dir),
        **(extra or {}),
    }
    write_json(out, dest)
    log.info(
        "%s: %s chips of %s: IoU %.3f, background IoU %.3f, mIoU %.3f (all-glacier mIoU %.3f)",
        dest,
        split,
        d,
        out["iou"],
        out["iou_background"],
        out["miou"],
        out["all_glacier_miou"],
    )
    return out
