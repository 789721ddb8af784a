"""Quicklook figures for the report: maps of a region/year and training curves.

Rasters are read decimated (at most ``max_px`` pixels on a side), so memory stays small for
any region size. Figures are written atomically as PNG.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

import matplotlib

matplotlib.use("Agg")
import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from numpy.typing import NDArray

from glaciermap.core.errors import InputDataError
from glaciermap.core.io import PathLike, atomic_path, band_names, open_raster, outline_layer
from glaciermap.ingest.labels import read_inventory

log = logging.getLogger(__name__)


# Colour composites of :func:`false_colour`, best first: the first whose bands are present.
COMPOSITES: tuple[tuple[tuple[str, str, str], str], ...] = (
    (("swir1", "nir", "green"), "false colour (SWIR1, NIR, green): snow and ice cyan"),
    (("nir", "red", "green"), "colour infrared (NIR, red, green): snow and ice white"),
    (("red", "green", "blue"), "natural colour (red, green, blue)"),
)


def read_decimated(
    path: PathLike, bands: Sequence[str], max_px: int = 1200
) -> tuple[NDArray[np.float32], tuple[float, float, float, float], str]:
    """Named bands at reduced resolution, their extent (left, right, bottom, top) and CRS."""
    with open_raster(path) as src:
        names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
        missing = [b for b in bands if b not in names]
        if missing:
            raise InputDataError(f"{path}: has no band(s) {missing}; it has {names}")
        idx = [names.index(b) + 1 for b in bands]
        f = max(1, int(np.ceil(max(src.width, src.height) / max_px)))
        shape = (len(idx), max(1, src.height // f), max(1, src.width // f))
        data = src.read(idx, out_shape=shape, masked=True).astype(np.float32)
        b = src.bounds
        return np.ma.filled(data, np.nan), (b.left, b.right, b.bottom, b.top), src.crs.to_string()


def _save(fig: Any, dest: PathLike) -> None:
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def placeholder(dest: PathLike, message: str, title: str = "") -> None:
    """A small PNG saying what is absent (rule outputs are fixed, inputs are not)."""
    log.info("%s: placeholder (%s)", dest, message)
    fig, ax = plt.subplots(figsize=(5, 2.5))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    _save(fig, dest)


def _exists(path: PathLike | None) -> TypeGuard[PathLike]:
    if path is None:
        return False
    if not Path(path).exists():
        log.warning("%s: not found, left out of the quicklook", path)
        return False
    return True


def skipped_inputs(*paths: PathLike | None) -> str:
    """A note of the inputs a region/year's stages left out because they lie outside the
    region (the ``SKIPPED_SCENES`` / ``SKIPPED_FILES`` tags of the optical composite and the
    SAR layers), e.g. ``"left out: 1 optical scene, 2 SAR files outside the region"``; empty
    when none were."""
    counts: dict[str, set[str]] = {"optical scene": set(), "SAR file": set()}
    for path in paths:
        if not _exists(path):
            continue
        with open_raster(path) as src:
            tags = src.tags()
        counts["optical scene"] |= {p for p in tags.get("SKIPPED_SCENES", "").split(",") if p}
        counts["SAR file"] |= {p for p in tags.get("SKIPPED_FILES", "").split(",") if p}
    parts = [f"{len(v)} {k}{'s' if len(v) > 1 else ''}" for k, v in counts.items() if v]
    return f"left out: {', '.join(parts)} outside the region" if parts else ""


def composite_bands(names: Sequence[str]) -> tuple[tuple[str, str, str], str] | None:
    """The first of :data:`COMPOSITES` whose bands are all in ``names`` (None if none)."""
    return next((c for c in COMPOSITES if set(c[0]) <= set(names)), None)


def false_colour(
    optical: PathLike | None,
    dest: PathLike,
    outlines: PathLike | None = None,
    inventory: PathLike | None = None,
    title: str = "",
) -> None:
    """Colour composite with predicted (red) and inventory (yellow) outlines.

    SWIR1 / NIR / green where the scene has SWIR1 (snow and ice cyan), else colour infrared
    NIR / red / green (four-band imagery: blue green red nir), else red / green / blue; the
    title says which. A placeholder without optical bands for any of them.
    """
    if not _exists(optical):
        placeholder(dest, "no optical image for this region/year", title)
        return
    names = band_names(optical)
    choice = composite_bands(names)
    if choice is None:
        msg = f"no bands for a colour composite\n({Path(optical).name} has {names})"
        placeholder(dest, msg, title)
        return
    bands, label = choice
    rgb, extent, crs = read_decimated(optical, bands)
    img = np.clip(np.moveaxis(rgb, 0, -1) / 0.8, 0, 1)
    img = np.nan_to_num(img, nan=0.0)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(img, extent=extent)
    handles = []
    if _exists(inventory):
        inv = read_inventory(inventory, crs, (extent[0], extent[2], extent[1], extent[3]))
        if len(inv):
            inv.boundary.plot(ax=ax, color="yellow", linewidth=0.8)
        handles.append(Line2D([], [], color="yellow", label="inventory"))
    if _exists(outlines):
        gdf = gpd.read_file(outlines, layer=outline_layer(outlines)).to_crs(crs)
        if len(gdf):
            gdf.boundary.plot(ax=ax, color="red", linewidth=0.8)
        handles.append(Line2D([], [], color="red", label="predicted outlines"))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    if handles:
        ax.legend(handles=handles, loc="lower right")
    ax.set_title(f"{title}: {label}" if title else label[0].upper() + label[1:])
    ax.set_xlabel(f"easting ({crs})")
    ax.set_ylabel("northing")
    _save(fig, dest)


def layer_map(
    raster: PathLike | None,
    band: str,
    dest: PathLike,
    cmap: str = "viridis",
    label: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str = "",
    missing: str = "",
) -> None:
    """One layer as a colour map; a small placeholder PNG when the raster (None) or its band
    does not exist, saying ``missing`` (default: "no {band} layer for this region/year")."""
    what = missing or f"no {band} layer for this region/year"
    if not _exists(raster):
        placeholder(dest, what, title or band)
        return
    names = band_names(raster)
    if band not in names:
        placeholder(dest, f"{what}\n({Path(raster).name} has no {band!r} band)", title or band)
        return
    fig, ax = plt.subplots(figsize=(8, 7))
    (arr,), extent, crs = read_decimated(raster, [band])
    im = ax.imshow(arr, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(im, ax=ax, shrink=0.8, label=label or band)
    ax.set_xlabel(f"easting ({crs})")
    ax.set_title(title or band)
    _save(fig, dest)


def training_curves(history: PathLike, dest: PathLike, title: str = "") -> None:
    """Training loss and validation mIoU and glacier IoU per epoch, one colour per ensemble
    member (bars of the validation scores for single-fit models such as the forest)."""
    h = pd.read_csv(history)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if "epoch" in h.columns:
        if "member" not in h.columns:
            h["member"] = 0
        ax2 = ax.twinx()
        for k, (member, g) in enumerate(h.groupby("member")):
            c = f"C{k % 10}"
            ax.plot(g["epoch"], g["train_loss"], "-", color=c, alpha=0.5)
            score = g["val_miou"] if "val_miou" in g else g["val_iou"]
            ax2.plot(g["epoch"], score, "o-", color=c, label=f"seed {member}: validation mIoU")
            if "val_miou" in g:
                ax2.plot(g["epoch"], g["val_iou"], ":", color=c)
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss (thin lines)")
        ax2.set_ylabel("validation mIoU (dots), glacier IoU (dotted)")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="lower right", fontsize="small")
    else:
        keys = [k for k in ("val_miou", "val_iou") if k in h.columns]
        ax.bar([k.replace("val_", "validation ") for k in keys], [float(h[k][0]) for k in keys])
        ax.set_ylim(0, 1)
    ax.set_title(title or str(Path(history).parent.name))
    _save(fig, dest)


def change_map(changes: PathLike, dest: PathLike, title: str = "") -> None:
    """Glacier complexes coloured by area change (% of the first epoch), with lost ground in
    red and gained ground in blue (layers of a :mod:`glaciermap.products.changes` GeoPackage)."""
    glaciers = gpd.read_file(changes, layer="glaciers")
    lost = gpd.read_file(changes, layer="lost")
    gained = gpd.read_file(changes, layer="gained")
    fig, ax = plt.subplots(figsize=(8, 8))
    if len(glaciers):
        glaciers.plot(
            ax=ax,
            column=glaciers["change_pct"].fillna(100.0).clip(-100, 100),
            cmap="RdBu",
            vmin=-100,
            vmax=100,
            alpha=0.45,
            legend=True,
            legend_kwds={"label": "area change (% of the first epoch)", "shrink": 0.7},
        )
        glaciers.boundary.plot(ax=ax, color="black", linewidth=0.4)
    if len(lost):
        lost.plot(ax=ax, color="#c0392b")
    if len(gained):
        gained.plot(ax=ax, color="#2e86c1")
    handles = [
        Line2D([], [], color="#c0392b", lw=6, label="ice lost"),
        Line2D([], [], color="#2e86c1", lw=6, label="ice gained"),
    ]
    ax.legend(handles=handles, loc="lower right")
    ax.set_title(title or "Glacier area change")
    ax.set_xlabel(f"easting ({glaciers.crs})")
    ax.set_ylabel("northing")
    _save(fig, dest)
