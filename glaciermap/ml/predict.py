"""Sliding-window inference written block by block to a tiled GeoTIFF.

Windows of ``window`` pixels sit on a lattice fixed to the region grid (origins at
``k * stride - overlap`` with ``stride = window - overlap``); each window's prediction is
blended with a raised-cosine weight that ramps over ``overlap`` pixels. Output blocks of
``block`` pixels are computed independently from the windows that touch them, so

* peak memory depends on ``window`` and ``block``, never on the region size, and
* the result does not depend on ``block`` (the window lattice does not move with it).

Bands written: ``probability`` (0..1) and ``uncertainty``: for a CNN ensemble of k > 1 seeds
the standard deviation of the members' probabilities (and each member's own probability as
bands ``probability_member_0`` ... so each seed can be scored), for a single CNN the weighted
standard deviation of the overlapping windows' predictions, for the random forest the standard
deviation of the trees' votes, ``sqrt(p (1 - p))``. Invalid pixels are NaN.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.grid import grid_of
from glaciermap.core.io import (
    PathLike,
    band_names,
    names_unreadable_rasters,
    open_raster,
    read_json,
)
from glaciermap.core.raster import grid_writer, tile_grid
from glaciermap.core.reproject import block_windows
from glaciermap.ml.features import VALID
from glaciermap.ml.models import ARCHS, build_cnn
from glaciermap.ml.train import RF_FILE, load_forest, normalise, resolve_device

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A trained model ready to predict: architecture, input layers with their normalisation,
    and the CNN ensemble members (``nets``) or the random forest (``forest``)."""

    arch: str
    layers: list[str]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    nets: list[torch.nn.Module] = field(default_factory=list)
    forest: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def _model_files(
    d: Path,
) -> tuple[str, dict[str, Any], list[str], NDArray[np.float64], NDArray[np.float64]]:
    """(arch, params, layers, mean, std) from ``config.json`` and ``norm.json`` of a model
    folder, checked: a clear error naming the file instead of a KeyError later."""
    cfg_path, norm_path = d / "config.json", d / "norm.json"
    cfg, norm = read_json(cfg_path), read_json(norm_path)
    arch = cfg.get("arch") if isinstance(cfg, dict) else None
    if arch not in ARCHS:
        raise InputDataError(
            f"{cfg_path}: arch {arch!r} is not one of {list(ARCHS)}; retrain the model (or "
            "check where the folder came from)"
        )
    params = cfg.get("params", {})
    try:
        layers = [str(n) for n in norm["layers"]]
        mean = np.asarray(norm["mean"], dtype=np.float64)
        std = np.asarray(norm["std"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(
            f"{norm_path}: needs lists 'layers', 'mean' and 'std' ({exc!r}); rerun training"
        ) from exc
    if not (len(layers) == mean.size == std.size) or mean.ndim != 1 or std.ndim != 1:
        raise InputDataError(
            f"{norm_path}: {len(layers)} layers but {mean.size} means and {std.size} standard "
            "deviations; rerun training"
        )
    return str(arch), params, layers, mean, std


def load_model(model_dir: PathLike, device: str = "auto") -> LoadedModel:
    """A trained model from its directory (``weights.pt`` or ``model.skops`` + JSONs)."""
    d = Path(model_dir)
    arch, params, layers, mean, std = _model_files(d)
    lm = LoadedModel(arch, layers, mean, std, device=resolve_device(device))
    if arch == "rf":
        lm.forest = load_forest(d / RF_FILE)
        return lm
    weights = d / "weights.pt"
    if not weights.exists():
        raise MissingInputError(f"{weights}: trained weights not found; rerun training")
    try:
        saved = torch.load(weights, map_location=lm.device, weights_only=True)
        states = saved["members"] if isinstance(saved, dict) and "members" in saved else [saved]
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, OSError, ...
        what = "not a PyTorch archive" if isinstance(exc, pickle.UnpicklingError) else _short(exc)
        raise InputDataError(
            f"{weights}: not a readable weights file ({what}); rerun training (a truncated "
            "copy, or not a glaciermap model?)"
        ) from exc
    try:
        for state in states:
            net = build_cnn(
                arch, len(lm.layers), base=params["base_channels"], depth=params["depth"]
            )
            net.load_state_dict(state)
            lm.nets.append(net.to(lm.device).eval())
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputDataError(
            f"{weights}: does not fit the {arch} of config.json on the {len(lm.layers)} layers "
            f"of norm.json ({_short(exc)}); rerun training (files of two models mixed?)"
        ) from exc
    return lm


def _short(exc: BaseException, n: int = 90) -> str:
    """``Type: message`` of an exception on one line, cut to about ``n`` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= n else text[:n] + "..."


def ramp_weight(window: int, overlap: int) -> NDArray[np.float32]:
    """2-D blending weight: raised-cosine ramps over ``overlap`` pixels at each edge."""
    i = np.arange(window, dtype=np.float64) + 0.5
    w1 = np.ones(window)
    if overlap > 0:
        edge = np.minimum(i, window - i) / overlap
        w1 = np.where(edge < 1, 0.5 - 0.5 * np.cos(np.pi * np.clip(edge, 0, 1)), 1.0)
    return np.outer(w1, w1).astype(np.float32)


def window_origins(start: int, stop: int, window: int, overlap: int) -> range:
    """Lattice origins ``k * stride - overlap`` of windows touching pixels [start, stop)."""
    stride = window - overlap
    k_min = math.floor((start + overlap - window) / stride) + 1
    k_max = math.ceil((stop + overlap) / stride) - 1
    return range(k_min * stride - overlap, k_max * stride - overlap + 1, stride)


def _read_padded(
    src: rasterio.io.DatasetReader, bands: list[int], r0: int, c0: int, h: int, w: int
) -> NDArray[np.float32]:
    """Bands of the window (r0, c0, h, w), NaN outside the raster."""
    out = np.full((len(bands), h, w), np.nan, dtype=np.float32)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, src.height), min(c0 + w, src.width)
    if rr1 > rr0 and cc1 > cc0:
        data = src.read(bands, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0), masked=True)
        out[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = np.ma.filled(
            data.astype(np.float32), np.nan
        )
    return out


def _predict_block_cnn(
    lm: LoadedModel,
    src: rasterio.io.DatasetReader,
    bands: list[int],
    r0: int,
    c0: int,
    h: int,
    w: int,
    window: int,
    overlap: int,
    batch_size: int,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Blended probability, uncertainty and the members' probabilities (k, h, w) of a block."""
    rows = window_origins(r0, r0 + h, window, overlap)
    cols = window_origins(c0, c0 + w, window, overlap)
    pr0, pc0 = rows[0], cols[0]
    ph, pw = rows[-1] + window - pr0, cols[-1] + window - pc0
    x = normalise(_read_padded(src, bands, pr0, pc0, ph, pw)[None], lm.mean, lm.std)[0]
    k = len(lm.nets)
    sw = np.zeros((ph, pw), dtype=np.float64)
    swp = np.zeros((k, ph, pw), dtype=np.float64)  # per member: sum w p
    swp2 = np.zeros((ph, pw), dtype=np.float64)  # of the members' mean: sum w p^2
    weight = ramp_weight(window, overlap)
    origins = [(r, c) for r in rows for c in cols]
    with torch.no_grad():
        for i in range(0, len(origins), batch_size):
            chunk = origins[i : i + batch_size]
            xb = torch.from_numpy(
                np.stack(
                    [x[:, r - pr0 : r - pr0 + window, c - pc0 : c - pc0 + window] for r, c in chunk]
                )
            ).to(lm.device)
            prob = np.stack([torch.sigmoid(net(xb))[:, 0].cpu().numpy() for net in lm.nets])
            for j, (r, c) in enumerate(chunk):
                sl = np.s_[r - pr0 : r - pr0 + window, c - pc0 : c - pc0 + window]
                sw[sl] += weight
                swp[(slice(None), *sl)] += weight * prob[:, j]
                swp2[sl] += weight * prob[:, j].mean(axis=0) ** 2
    crop = np.s_[r0 - pr0 : r0 - pr0 + h, c0 - pc0 : c0 - pc0 + w]
    members = swp[(slice(None), *crop)] / sw[crop]
    mean = members.mean(axis=0)
    if k > 1:
        std = members.std(axis=0)
    else:
        std = np.sqrt(np.maximum(swp2[crop] / sw[crop] - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32), members.astype(np.float32)


def _predict_block_rf(
    lm: LoadedModel,
    src: rasterio.io.DatasetReader,
    bands: list[int],
    r0: int,
    c0: int,
    h: int,
    w: int,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    x = _read_padded(src, bands, r0, c0, h, w)
    flat = normalise(np.moveaxis(x, 0, -1).reshape(-1, len(bands)), lm.mean, lm.std)
    proba = lm.forest.predict_proba(flat)
    classes = list(lm.forest.classes_)
    p = proba[:, classes.index(1)] if 1 in classes else np.zeros(len(flat))
    p = p.reshape(h, w).astype(np.float32)
    return p, np.sqrt(p * (1 - p)).astype(np.float32)


@names_unreadable_rasters
def sliding_window_predict(
    features: PathLike,
    model_dir: PathLike,
    dest: PathLike,
    window: int = 256,
    overlap: int = 64,
    block: int = 2048,
    batch_size: int = 4,
    device: str = "auto",
    threads: int = 1,
    tile: Window | None = None,
) -> None:
    """Predict glacier probability over a feature stack, block by block, into ``dest``.

    ``tile``: predict only this window of the features' grid (a processing tile), written on
    the tile's part of the grid; windows reach into the neighbouring tiles' features and sit
    on the region's lattice, so a mosaic of tiles equals the whole-grid prediction."""
    torch.set_num_threads(max(1, threads))
    lm = load_model(model_dir, device)
    if lm.nets:
        div = getattr(lm.nets[0], "divisor", 1)
        if window < 1 or window % div:
            raise ConfigError(
                f"inference: window {window} px does not suit the {lm.arch} of {model_dir} "
                f"(needs a multiple of {div}); set inference: window to e.g. {max(div, 256)}"
            )
        if not 0 <= overlap < window:
            raise ConfigError(
                f"inference: overlap {overlap} px must be at least 0 and below inference: "
                f"window ({window} px); set it to e.g. {window // 4}"
            )
    names = band_names(features)
    missing = [n for n in lm.layers if n not in names]
    if missing:
        raise MissingInputError(
            f"{features}: has no layer(s) {missing} that the model {model_dir} was trained on; "
            "use a model whose feature set this region/year provides"
        )
    bands = [names.index(n) + 1 for n in lm.layers]
    vband = names.index(VALID) + 1
    grid = grid_of(features)
    out_grid = grid if tile is None else tile_grid(grid, tile)
    r_off, c_off = (0, 0) if tile is None else (int(tile.row_off), int(tile.col_off))
    block = max(256, block // 256 * 256)
    n_members = len(lm.nets) if len(lm.nets) > 1 else 0
    names = ["probability", "uncertainty", *(f"probability_member_{m}" for m in range(n_members))]
    t0 = time.time()
    nblocks = math.ceil(out_grid.height / block) * math.ceil(out_grid.width / block)
    tags = {"MODEL": str(model_dir), "ARCH": lm.arch, "LAYERS": ",".join(lm.layers)}
    # The region's probability is a product people open in a GIS: a COG with overviews
    # (a tile is gathered into the region's COG later).
    cog = tile is None
    with open_raster(features) as src:
        with grid_writer(dest, out_grid, names, "float32", np.nan, tags, cog=cog) as dst:
            for n, win in enumerate(block_windows(out_grid, block), 1):
                r0, c0, h, w = win.row_off + r_off, win.col_off + c_off, win.height, win.width
                if lm.arch == "rf":
                    p, u = _predict_block_rf(lm, src, bands, r0, c0, h, w)
                    members = np.zeros((0, h, w), np.float32)
                else:
                    p, u, members = _predict_block_cnn(
                        lm, src, bands, r0, c0, h, w, window, overlap, batch_size
                    )
                out = np.concatenate([p[None], u[None], members[:n_members]])
                valid = src.read(vband, window=Window(c0, r0, w, h)) > 0
                out[:, ~valid] = np.nan
                dst.write(out, window=win)
                log.info("predict: block %d/%d (%.0f s)", n, nblocks, time.time() - t0)
