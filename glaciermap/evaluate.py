"""Pixel metrics of a glacier map against reference labels.

Accuracy, precision, recall, F1 and intersection-over-union of the glacier class (as in the
reference course's benchmark table), the IoU of the background class and their mean (mIoU),
counted over valid pixels only. Glacier IoU alone flatters on glacier-rich scenes: predicting
"everything is glacier" scores the glacier fraction. Every result therefore carries the scores
of that trivial all-glacier predictor on the same pixels (``all_glacier_*``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glaciermap.features import VALID
from glaciermap.grid import RegionGrid, check_same_grid
from glaciermap.io import PathLike, read_bands, write_json
from glaciermap.labels import rasterize_inventory

log = logging.getLogger(__name__)


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Acc, P, R, F1, IoU of the glacier class, background IoU, mIoU and the all-glacier
    predictor's scores from confusion counts (NaN when undefined)."""

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    iou, iou_bg = ratio(tp, tp + fp + fn), ratio(tn, tn + fp + fn)
    n, ice = tp + fp + fn + tn, tp + fn
    return {
        "accuracy": ratio(tp + tn, n),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": iou,
        "iou_background": iou_bg,
        "miou": (iou + iou_bg) / 2,
        # "everything is glacier" on the same pixels: recall 1, background IoU 0
        "all_glacier_accuracy": ratio(ice, n),
        "all_glacier_f1": ratio(2 * ice, ice + n),
        "all_glacier_iou": ratio(ice, n),
        "all_glacier_miou": ratio(ice, n) / 2 if n else float("nan"),
        "glacier_fraction": ratio(ice, n),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def confusion_metrics(
    pred: NDArray[np.bool_], truth: NDArray[np.bool_], valid: NDArray[np.bool_] | None = None
) -> dict[str, float]:
    """Acc, P, R, F1, IoU (and the confusion counts) of ``pred`` vs ``truth`` where ``valid``."""
    if valid is None:
        valid = np.ones(pred.shape, dtype=bool)
    p, t = pred[valid].astype(bool), truth[valid].astype(bool)
    return metrics_from_counts(
        int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t)), int(np.sum(~p & ~t))
    )


def evaluate_probability(
    probability: PathLike,
    labels: PathLike,
    features: PathLike,
    dest: PathLike,
    threshold: float = 0.5,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of ``probability >= threshold`` against rasterized labels; writes JSON."""
    prob, _ = read_bands(probability, ["probability"])
    lab, _ = read_bands(labels)
    valid, _ = read_bands(features, [VALID])
    ok = (valid[0] > 0) & np.isfinite(prob[0])
    m: dict[str, Any] = confusion_metrics(prob[0] >= threshold, lab[0] > 0, ok)
    m.update({"threshold": threshold, "source": str(probability), **(extra or {})})
    write_json(m, dest)
    log.info(
        "metrics %s: IoU %.3f, background IoU %.3f, mIoU %.3f (all-glacier mIoU %.3f)",
        probability,
        m["iou"],
        m["iou_background"],
        m["miou"],
        m["all_glacier_miou"],
    )
    return m


def evaluate_outlines(
    outlines: PathLike,
    labels: PathLike,
    features: PathLike,
    grid_path: PathLike,
    dest: PathLike,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of the final outlines (rasterized on the grid) against the labels."""
    grid = RegionGrid.load(grid_path)
    check_same_grid(grid, labels, features)
    pred = rasterize_inventory(outlines, grid) > 0
    lab, _ = read_bands(labels)
    valid, _ = read_bands(features, [VALID])
    m: dict[str, Any] = confusion_metrics(pred, lab[0] > 0, valid[0] > 0)
    m.update({"source": str(outlines), **(extra or {})})
    write_json(m, dest)
    log.info(
        "outline metrics %s: IoU %.3f, background IoU %.3f, mIoU %.3f (all-glacier mIoU %.3f)",
        outlines,
        m["iou"],
        m["iou_background"],
        m["miou"],
        m["all_glacier_miou"],
    )
    return m
