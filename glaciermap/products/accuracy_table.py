"""The benchmark table: models x feature sets, metrics on the held-out test tiles of a
dataset, printed beside the published values of the reference course (Alps 2015,
Sentinel-1/2 + Copernicus DEM, ground truth Paul et al. 2020).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from rasterio.windows import Window

from glaciermap.core.errors import InputDataError
from glaciermap.core.grid import grid_of
from glaciermap.core.io import PathLike, atomic_path, read_json, write_json
from glaciermap.products.metrics import Counts, count_confusion, metrics_with_seeds

log = logging.getLogger(__name__)

METRICS = ("accuracy", "precision", "recall", "f1", "iou")
HEADERS = {"accuracy": "Acc", "precision": "P", "recall": "R", "f1": "F1", "iou": "IoU"}
# Columns without a published value; "seeds mIoU sd" shares the seeds column in Markdown.
EXTRA = {
    "iou_background": "bg IoU",
    "miou": "mIoU",
    "seed_miou_mean": "seeds mIoU",
    "seed_miou_sd": "seeds mIoU sd",
    "all_glacier_miou": "all-glacier mIoU",
    "iou_clean": "clean-ice IoU",
    "iou_debris": "debris IoU",
}
ARCH_NAMES = {"rf": "RF", "unet": "U-Net", "segnet": "SegNet", "deeplabv3plus": "DeepLabV3+"}
FEATURESET_NAMES = {
    "rgbn": "RGB+NIR",
    "optical": "Optical",
    "optical_dem": "Opt+DEM",
    "optical_dem_sar": "Opt+DEM+SAR",
}

# The reference course's Alps table (test tiles).
PUBLISHED: dict[tuple[str, str], tuple[float, float, float, float, float]] = {
    ("rf", "optical"): (0.986, 0.929, 0.828, 0.876, 0.779),
    ("rf", "optical_dem"): (0.989, 0.941, 0.857, 0.897, 0.813),
    ("rf", "optical_dem_sar"): (0.989, 0.944, 0.870, 0.905, 0.827),
    ("unet", "optical"): (0.991, 0.946, 0.893, 0.919, 0.850),
    ("unet", "optical_dem"): (0.992, 0.950, 0.906, 0.928, 0.865),
    ("unet", "optical_dem_sar"): (0.992, 0.948, 0.917, 0.932, 0.873),
}


def evaluate_on_split(
    index_csv: PathLike,
    members: Mapping[str, tuple[PathLike, PathLike, PathLike]],
    dest: PathLike,
    split: str = "test",
    threshold: float = 0.5,
    extra: dict[str, Any] | None = None,
    debris: Mapping[str, PathLike] | None = None,
) -> dict[str, Any]:
    """Pixel metrics over the chips of one split.

    ``members`` maps ``region_year`` to (probability, labels, features) rasters; the chips'
    row/col in ``index.csv`` locate them. Counts are summed over all members' chips. A
    probability raster of a CNN ensemble also holds each seed's probability
    (``probability_member_K``): each is scored too (``seeds``: a list of metric dicts), and
    ``seed_miou_mean`` / ``seed_miou_sd`` summarise them. ``debris`` maps members to their
    debris-cover labels: clean and debris-covered ice are then also scored apart (only when
    every member has them, so no member's ice is silently counted as clean).
    """
    if debris is not None and not set(members) <= set(debris):
        log.info("debris labels for %s of %s members: not scored apart", len(debris), len(members))
        debris = None
    index = pd.read_csv(index_csv)
    index = index[index["split"] == split]
    totals: dict[str, Counts] = {}
    for ry, (prob_path, lab_path, feat_path) in members.items():
        region, year = ry.rsplit("_", 1)
        rows = index[(index["region"] == region) & (index["year"] == int(year))]
        if rows.empty:
            continue
        g = grid_of(prob_path)
        tile = round((rows.iloc[0]["right"] - rows.iloc[0]["left"]) / g.resolution)
        chips = list(zip(rows["row"].astype(int), rows["col"].astype(int), strict=True))

        def select(win: Window, chips: list[tuple[int, int]] = chips, tile: int = tile) -> Any:
            r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
            sel = np.zeros((h, w), dtype=bool)
            for r, c in chips:
                ra, rb = max(r * tile, r0) - r0, min((r + 1) * tile, r0 + h) - r0
                ca, cb = max(c * tile, c0) - c0, min((c + 1) * tile, c0 + w) - c0
                if ra < rb and ca < cb:
                    sel[ra:rb, ca:cb] = True
            return sel

        deb = (debris or {}).get(ry)
        counts = count_confusion(prob_path, lab_path, feat_path, threshold, select, debris=deb)
        for name, c in counts.items():
            t = totals.setdefault(name, {})
            for k, v in c.items():
                t[k] = t.get(k, 0) + v
    if "probability" not in totals:
        raise InputDataError(
            f"{index_csv}: no {split} chip in {sorted(members)}; enlarge the dataset's regions "
            "or lower datasets: NAME: block_tiles"
        )
    out: dict[str, Any] = {
        **metrics_with_seeds(totals),
        "split": split,
        "n_chips": len(index),
        **(extra or {}),
    }
    write_json(out, dest)
    log.info(
        "%s: %s IoU %.3f, background IoU %.3f, mIoU %.3f (all-glacier mIoU %.3f)",
        dest,
        split,
        out["iou"],
        out["iou_background"],
        out["miou"],
        out["all_glacier_miou"],
    )
    return out


def _number(value: Any) -> float:
    """A metric read from JSON: undefined ones (null, absent) as NaN."""
    return float("nan") if value is None else float(value)


def benchmark_table(
    results: Mapping[tuple[str, str], PathLike],
    dest_md: PathLike,
    dest_csv: PathLike,
    title: str,
    scored_on: str = "the dataset's held-out test chips",
) -> pd.DataFrame:
    """Markdown and CSV table of measured metrics beside the published Alps values, with
    background IoU, mIoU, the seeds' mIoU (mean and sd, for ensembles) and the all-glacier
    predictor's mIoU on the same pixels."""
    rows = []
    for (arch, fs), path in results.items():
        m = read_json(path)
        row: dict[str, Any] = {
            "model": ARCH_NAMES.get(arch, arch),
            "features": FEATURESET_NAMES.get(fs, fs),
        }
        pub = PUBLISHED.get((arch, fs))
        for i, k in enumerate(METRICS):
            row[HEADERS[k]] = _number(m[k])
            row[f"{HEADERS[k]} (published)"] = pub[i] if pub else float("nan")
        for k in EXTRA:
            row[EXTRA[k]] = _number(m.get(k))
        rows.append(row)
    df = pd.DataFrame(rows)
    with atomic_path(dest_csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.3f")

    def fmt(x: float) -> str:
        return "–" if np.isnan(x) else f"{x:.3f}".lstrip("0")

    lines = [
        f"# {title}",
        "",
        f"Measured on {scored_on}; published values (Alps, reference "
        "course) in parentheses. IoU is the glacier class's; mIoU averages it with the "
        "background IoU; seeds: mean (sd) of the ensemble members' mIoU; all-glacier: the "
        "mIoU of predicting glacier everywhere on the same pixels; clean-ice / debris IoU: the "
        "glacier IoU with the other ice type left out (where debris-cover polygons exist).",
        "",
        "| model | features | "
        + " | ".join(HEADERS[k] for k in METRICS)
        + " | "
        + " | ".join(v for v in EXTRA.values() if v != "seeds mIoU sd")
        + " |",
        "|---|---|" + "---|" * (len(METRICS) + len(EXTRA) - 1),
    ]
    for r in rows:
        cells = [f"{fmt(r[HEADERS[k]])} ({fmt(r[HEADERS[k] + ' (published)'])})" for k in METRICS]
        seeds = (
            f"{fmt(r['seeds mIoU'])} ({fmt(r['seeds mIoU sd'])})"
            if not np.isnan(r["seeds mIoU"])
            else "–"
        )
        cells += [fmt(r["bg IoU"]), fmt(r["mIoU"]), seeds, fmt(r["all-glacier mIoU"])]
        cells += [fmt(r["clean-ice IoU"]), fmt(r["debris IoU"])]
        lines.append(f"| {r['model']} | {r['features']} | " + " | ".join(cells) + " |")
    with atomic_path(dest_md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return df
