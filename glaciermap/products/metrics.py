"""Pixel metrics of a glacier map against reference labels.

Accuracy, precision, recall, F1 and intersection-over-union of the glacier class (as in the
reference course's benchmark table), the IoU of the background class and their mean (mIoU),
counted over valid pixels only. Glacier IoU alone flatters on glacier-rich scenes: predicting
"everything is glacier" scores the glacier fraction. Every result therefore carries the scores
of that trivial all-glacier predictor on the same pixels (``all_glacier_*``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import RegionGrid, check_same_grid, grid_of
from glaciermap.core.io import (
    READ_ONCE_CACHE_MB,
    PathLike,
    band_names,
    gdal_cache,
    open_raster,
    write_json,
)
from glaciermap.core.reproject import shape_windows
from glaciermap.ingest.labels import rasterized_blocks
from glaciermap.ml.features import VALID

log = logging.getLogger(__name__)


def _ratio(a: int, b: int) -> float:
    """The ratio a / b, NaN when undefined (b == 0)."""
    return a / b if b else float("nan")


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, Any]:
    """Acc, P, R, F1, IoU of the glacier class, background IoU, mIoU and the all-glacier
    predictor's scores from confusion counts (NaN when undefined), and a ``status``:
    ``scored``, ``no truth`` (no glacier in the truth) or ``no pixels``."""
    ratio = _ratio
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
        # "no truth": the truth has no glacier on the scored pixels (an empty or
        # out-of-region inventory), so glacier IoU, recall and F1 are undefined (null in JSON)
        # and a high background IoU says nothing about glaciers.
        "status": "scored" if ice and n - ice else ("no pixels" if not n else "no truth"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


COUNT_KEYS = ("tp", "fp", "fn", "tn")
Counts = dict[str, int]


def add_confusion(c: Counts, pred: NDArray[np.bool_], truth: NDArray[np.bool_]) -> None:
    """Add the confusion counts of boolean ``pred`` vs ``truth`` (same shape) to ``c``."""
    c["tp"] += int(np.sum(pred & truth))
    c["fp"] += int(np.sum(pred & ~truth))
    c["fn"] += int(np.sum(~pred & truth))
    c["tn"] += int(np.sum(~pred & ~truth))


def confusion_metrics(
    pred: NDArray[np.bool_], truth: NDArray[np.bool_], valid: NDArray[np.bool_] | None = None
) -> dict[str, float]:
    """Acc, P, R, F1, IoU (and the confusion counts) of ``pred`` vs ``truth`` where ``valid``."""
    if valid is None:
        valid = np.ones(pred.shape, dtype=bool)
    c = dict.fromkeys(COUNT_KEYS, 0)
    add_confusion(c, pred[valid].astype(bool), truth[valid].astype(bool))
    return metrics_from_counts(**c)


def probability_bands(path: PathLike) -> list[str]:
    """The probability bands of a prediction: ``probability`` (the ensemble mean) first, then
    ``probability_member_K`` of each ensemble member."""
    names = [n for n in band_names(path) if n.startswith("probability")]
    if "probability" not in names:
        raise InputDataError(f"{path}: has no band 'probability'; rerun its predict step")
    return ["probability", *(n for n in names if n != "probability")]  # file order


def count_confusion(
    probability: PathLike,
    labels: PathLike,
    features: PathLike,
    threshold: float = 0.5,
    select: Callable[[Window], NDArray[np.bool_] | None] | None = None,
    block: int = 1024,
    debris: PathLike | None = None,
) -> dict[str, Counts]:
    """Confusion counts (tp, fp, fn, tn) of every probability band against the labels over
    valid pixels, read block by block (nothing region-sized in memory). ``select(window)``
    restricts the pixels (a boolean mask of the window, or None to skip the window). With
    ``debris`` labels (1 = debris-covered), the glacier pixels are also counted apart:
    ``tp_debris`` / ``fn_debris`` (the rest is clean ice)."""
    names = probability_bands(probability)
    grid = grid_of(probability)
    check_same_grid(grid, labels, features, *([debris] if debris else []))
    keys = (*COUNT_KEYS, "tp_debris", "fn_debris") if debris else COUNT_KEYS
    totals = {n: dict.fromkeys(keys, 0) for n in names}
    with contextlib.ExitStack() as stack:
        stack.enter_context(gdal_cache(READ_ONCE_CACHE_MB))
        ps, ls, fs = (stack.enter_context(open_raster(p)) for p in (probability, labels, features))
        ds = stack.enter_context(open_raster(debris)) if debris else None
        all_p = [d or "" for d in ps.descriptions]
        all_f = [d or "" for d in fs.descriptions]
        if VALID not in all_f:
            raise InputDataError(f"{features}: has no band {VALID!r}; rerun its features step")
        pidx = [all_p.index(n) + 1 for n in names]
        for win in shape_windows(grid.shape, block):
            sel = None if select is None else select(win)
            if select is not None and (sel is None or not sel.any()):
                continue
            prob = ps.read(pidx, window=win, masked=True).astype(np.float32).filled(np.nan)
            truth = ls.read(1, window=win) > 0
            ok = (fs.read(all_f.index(VALID) + 1, window=win) > 0) & np.isfinite(prob[0])
            if sel is not None:
                ok &= sel
            t = truth[ok]
            d = (ds.read(1, window=win)[ok] > 0) & t if ds is not None else None
            for name, band in zip(names, prob, strict=True):
                pred = band[ok] >= threshold
                c = totals[name]
                add_confusion(c, pred, t)
                if d is not None:
                    c["tp_debris"] += int(np.sum(pred & d))
                    c["fn_debris"] += int(np.sum(~pred & d))
    return totals


def surface_metrics(c: Counts) -> dict[str, float]:
    """IoU and recall of clean and of debris-covered glacier ice: each the glacier IoU with
    the other ice type left out, ``tp_x / (tp_x + fn_x + fp)`` (false positives cannot be
    assigned to an ice type, so both carry all of them)."""
    ratio = _ratio
    td, fd = c["tp_debris"], c["fn_debris"]
    tc, fc = c["tp"] - td, c["fn"] - fd
    return {
        "iou_clean": ratio(tc, tc + fc + c["fp"]),
        "iou_debris": ratio(td, td + fd + c["fp"]),
        "recall_clean": ratio(tc, tc + fc),
        "recall_debris": ratio(td, td + fd),
        "debris_fraction": ratio(td + fd, c["tp"] + c["fn"]),
    }


def metrics_with_seeds(totals: dict[str, Counts]) -> dict[str, Any]:
    """Metrics of the ``probability`` counts; with ensemble members, each member's metrics
    (``seeds``) and the mean / sd of their mIoU."""

    def metrics(c: Counts) -> dict[str, Any]:
        m: dict[str, Any] = metrics_from_counts(**{k: c[k] for k in COUNT_KEYS})
        if "tp_debris" in c:
            m.update(surface_metrics(c))
        return m

    out = metrics(totals["probability"])
    members = [n for n in totals if n != "probability"]
    if members:
        seeds = [metrics(totals[n]) for n in members]
        mious = np.array([s["miou"] for s in seeds])
        out.update(
            seeds=seeds,
            seed_miou_mean=float(mious.mean()),
            seed_miou_sd=float(mious.std(ddof=1)) if len(mious) > 1 else 0.0,
        )
    return out


def evaluate_probability(
    probability: PathLike,
    labels: PathLike,
    features: PathLike,
    dest: PathLike,
    threshold: float = 0.5,
    extra: dict[str, Any] | None = None,
    debris: PathLike | None = None,
) -> dict[str, Any]:
    """Metrics of ``probability >= threshold`` against rasterized labels (and of each ensemble
    member's probability, ``seeds``; with ``debris`` labels, of clean and debris-covered ice
    apart); writes JSON."""
    m = metrics_with_seeds(count_confusion(probability, labels, features, threshold, debris=debris))
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
    block: int = 2048,
) -> dict[str, Any]:
    """Metrics of the final outlines (read and rasterized on the grid block by block, so
    neither their pixels nor their polygons are all in memory) against the labels."""
    grid = RegionGrid.load(grid_path)
    check_same_grid(grid, labels, features)
    c = dict.fromkeys(COUNT_KEYS, 0)
    with gdal_cache(READ_ONCE_CACHE_MB), open_raster(labels) as ls, open_raster(features) as fs:
        vband = [d or "" for d in fs.descriptions].index(VALID) + 1
        for win, burnt in rasterized_blocks(outlines, grid, block):  # read block by block
            ok = fs.read(vband, window=win) > 0
            add_confusion(c, burnt[ok] > 0, ls.read(1, window=win)[ok] > 0)
    m: dict[str, Any] = metrics_from_counts(**c)
    m.update({"source": str(outlines), **(extra or {})})
    write_json(m, dest)
    if m["status"] != "scored":
        log.warning(
            "outline metrics %s: %s (the labels %s hold no glacier)", outlines, m["status"], labels
        )
    log.info(
        "outline metrics %s: IoU %.3f, background IoU %.3f, mIoU %.3f (all-glacier mIoU %.3f)",
        outlines,
        m["iou"],
        m["iou_background"],
        m["miou"],
        m["all_glacier_miou"],
    )
    return m
