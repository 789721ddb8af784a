"""Quicklook figures for the report: maps of a region/year and training curves.

Rasters are read decimated (at most ``max_px`` pixels on a side), so memory stays small for
any region size. Figures are written atomically as PNG.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from numpy.typing import NDArray

from glaciermap.io import PathLike, atomic_path, open_raster
from glaciermap.labels import read_inventory

log = logging.getLogger(__name__)


def read_decimated(
    path: PathLike, bands: list[str], max_px: int = 1200
) -> tuple[NDArray[np.float32], tuple[float, float, float, float], str]:
    """Named bands at reduced resolution, their extent (left, right, bottom, top) and CRS."""
    with open_raster(path) as src:
        names = list(src.descriptions)
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


def false_colour(
    optical: PathLike,
    dest: PathLike,
    outlines: PathLike | None = None,
    inventory: PathLike | None = None,
    title: str = "",
) -> None:
    """SWIR1 / NIR / green composite (snow and ice cyan) with predicted (red) and inventory
    (yellow) outlines."""
    rgb, extent, crs = read_decimated(optical, ["swir1", "nir", "green"])
    img = np.clip(np.moveaxis(rgb, 0, -1) / 0.8, 0, 1)
    img = np.nan_to_num(img, nan=0.0)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(img, extent=extent)
    handles = []
    if inventory is not None:
        inv = read_inventory(inventory, crs)
        inv.boundary.plot(ax=ax, color="yellow", linewidth=0.8)
        handles.append(Line2D([], [], color="yellow", label="inventory"))
    if outlines is not None:
        gdf = gpd.read_file(outlines).to_crs(crs)
        gdf.boundary.plot(ax=ax, color="red", linewidth=0.8)
        handles.append(Line2D([], [], color="red", label="predicted outlines"))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    if handles:
        ax.legend(handles=handles, loc="lower right")
    ax.set_title(title or "False colour (SWIR1, NIR, green)")
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
) -> None:
    """One layer as a colour map; a placeholder figure when the layer does not exist."""
    fig, ax = plt.subplots(figsize=(8, 7))
    if raster is None:
        ax.text(0.5, 0.5, f"no {band} layer for this region/year", ha="center", va="center")
        ax.set_axis_off()
    else:
        (arr,), extent, crs = read_decimated(raster, [band])
        im = ax.imshow(arr, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax, shrink=0.8, label=label or band)
        ax.set_xlabel(f"easting ({crs})")
    ax.set_title(title or band)
    _save(fig, dest)


def training_curves(history: PathLike, dest: PathLike, title: str = "") -> None:
    """Training loss and validation IoU per epoch (a bar for single-fit models)."""
    h = pd.read_csv(history)
    fig, ax = plt.subplots(figsize=(7, 4))
    if "epoch" in h.columns:
        ax.plot(h["epoch"], h["train_loss"], "o-", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax2 = ax.twinx()
        ax2.plot(h["epoch"], h["val_iou"], "s-", color="C1", label="validation IoU")
        ax2.set_ylabel("validation IoU")
        ax2.set_ylim(0, 1)
        fig.legend(loc="lower center", ncol=2)
    else:
        ax.bar(["validation IoU"], [float(h.get("val_iou", pd.Series([np.nan]))[0])])
        ax.set_ylim(0, 1)
    ax.set_title(title or str(Path(history).parent.name))
    _save(fig, dest)


def change_map(changes: PathLike, dest: PathLike, title: str = "") -> None:
    """Glacier complexes coloured by area change (% of the first epoch), with lost ground in
    red and gained ground in blue (layers of a :mod:`glaciermap.changes` GeoPackage)."""
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
