"""The reference course's dataset (``train.hdf5``, ``val.hdf5``, ``test.hdf5``) converted into
this project's chip store (the one :func:`glaciermap.ml.chips.make_tiles` writes), so
``train_rf`` / ``train_cnn`` and prediction use it unchanged.

Layout read: each file holds one HDF5 group per tile, keyed by a tile code
``PREFIX-ROW-COL`` (``ALP-23-20``, ``HMA-110-78``: region prefix, row and column of a 10 km UTM
tiling). A group has the datasets ``features`` (padded height x padded width x channels,
channel-last) and ``outlines`` (padded height x padded width x 2, one-hot, channel 1 =
glacier) and the attributes ``height``, ``width``, ``pad_height``, ``pad_width``: the data area
is ``[pad_height : pad_height + height, pad_width : pad_width + width]``; the padding around it
is ignored. Channel meaning differs between dataset versions, so ``channels`` names the layer
of every channel by index (:data:`ALPS_CHANNELS` for the 11-layer Alps version; ``None``
drops a channel), and ``regions`` maps code prefixes to region names.

Written to ``dest_dir`` (see :mod:`glaciermap.ml.chips`):

* ``features.npy`` (N, C, T, T), ``labels.npy`` (N, T, T), ``index.csv``: every tile's data
  area cut into chips of ``tile_size`` (the last row and column of chips padded: NaN
  features, ``IGNORE`` labels; every chip is kept, its ``valid_fraction`` says how much of it
  is data). The split of a chip is the file it came from, ``region`` comes from the code's
  prefix, ``year`` from the config, ``row`` / ``col`` are the tiling row and column of the
  code. The files carry no georeference, so ``left, bottom, right, top`` are **pixel
  placeholders**: the chip's
  columns and (negated) rows inside its tile's data area, ``left = c0``, ``right = c0 + T``,
  ``top = -r0``, ``bottom = -(r0 + T)``. Three columns follow those of ``make_tiles``: ``tile``
  (the code), ``chip_row`` and ``chip_col`` (the chip's position in its tile);
* ``area_features.npy`` / ``area_labels.npy`` / ``area_split.npy``: the pixel store, one
  member per tile (its data area padded to whole chips), every pixel with the split code of
  its file. Splits are whole tiles, so no train pixel lies next to a held-out one and no
  buffer is needed (``buffer_px`` 0);
* ``meta.json``: layers, tile size and the members (with their ``tile`` code and ``split``).

Layers are the named channels followed by the derived layers of
:mod:`glaciermap.ml.features` that the optical channels allow (``ndsi``, ``ndwi``,
``brightness``, ratios, texture; the ``features:`` selection and ``texture_px``), computed per
tile on its data area by the same code as a feature stack, so a model trained here has the
layers a regular feature stack gives (:func:`glaciermap.ml.features.model_layers`) and
predicts on a region of one's own data. A pixel is valid where every layer is finite; labels
are ``IGNORE`` elsewhere and where the one-hot outline is neither glacier nor background.

Everything is streamed tile by tile into memory-mapped ``.npy`` files: peak memory is one
tile's layers, whatever the size of the dataset. Every output is written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.io import PathLike, atomic_path, write_json
from glaciermap.ingest.names import LAYER_COHERENCE, LAYER_COPOL_DB, LAYER_CROSSPOL_DB
from glaciermap.ingest.optical import COMMON_NAMES
from glaciermap.ml.chips import IGNORE, SPLIT_CODES, SPLITS
from glaciermap.ml.features import (
    DEFAULT_TEXTURE_PX,
    VALID,
    _compute_derived,
    derived_layer_name,
    select_derived,
)

log = logging.getLogger(__name__)

ALPS_CHANNELS: tuple[str, ...] = (
    *COMMON_NAMES,  # blue, green, red, nir, swir1, swir2 (the course's false colour: 5, 3, 2)
    "elevation",
    "slope",
    LAYER_COPOL_DB,
    LAYER_CROSSPOL_DB,
    LAYER_COHERENCE,
)
"""Layer names of the channels of the 11-layer Alps version, by index."""
DEFAULT_REGIONS: dict[str, str] = {"ALP": "alps", "HMA": "hma", "SVB": "svalbard"}
"""Region name of each tile-code prefix."""
SPLIT_FILES: dict[str, str] = {s: f"{s}.hdf5" for s in SPLITS}
"""The file of each split."""
TILE_ATTRS = ("height", "width", "pad_height", "pad_width")
TILE_DATASETS = ("features", "outlines")
_CODE = re.compile(r"^([A-Za-z][A-Za-z0-9]*)-(\d+)-(\d+)$")
_LAYOUT = (
    "each tile group needs datasets features (H x W x channels) and outlines (H x W x 2) and "
    "attributes height, width, pad_height, pad_width"
)


@dataclass(frozen=True)
class ReferenceTile:
    """One tile of the reference dataset: where it is and the shape of its data area."""

    path: Path
    split: str
    code: str
    region: str
    row: int
    col: int
    height: int
    width: int
    pad_height: int
    pad_width: int

    def chips(self, tile_size: int) -> tuple[int, int]:
        """Chip rows and columns covering the data area (the last ones padded)."""
        return -(-self.height // tile_size), -(-self.width // tile_size)


def parse_tile_code(code: str, path: PathLike) -> tuple[str, int, int]:
    """(prefix, row, col) of a tile code such as ``ALP-23-20``."""
    m = _CODE.match(code)
    if not m:
        raise InputDataError(
            f"{path}: group {code!r} is not a tile code PREFIX-ROW-COL (e.g. ALP-23-20); "
            "remove it or rename it to the reference dataset's tile codes"
        )
    return m.group(1), int(m.group(2)), int(m.group(3))


def reference_layers(
    channels: Sequence[str | None],
    derived: Sequence[str] | None = None,
    texture_px: int = DEFAULT_TEXTURE_PX,
    name: str = "NAME",
) -> tuple[list[str], list[str]]:
    """(layer names of the store, derived keys computed): the named channels, then the
    derived layers (:func:`glaciermap.ml.features.select_derived`) their optical bands allow,
    except those a channel already holds. :class:`ConfigError` for repeated names."""
    base = [c for c in channels if c is not None]
    repeated = sorted({c for c in base if base.count(c) > 1})
    if repeated or VALID in base or not base:
        what = f"repeats {repeated}" if repeated else (f"names {VALID!r}" if base else "is empty")
        raise ConfigError(
            f"reference: {name}: channels {what}; give each channel its own layer name "
            f"(or null to drop it), e.g. {list(ALPS_CHANNELS)}"
        )
    optical = [c for c in base if c in COMMON_NAMES]
    keys = [
        k
        for k in (select_derived(optical, derived, texture_px) if optical else [])
        if derived_layer_name(k, texture_px) not in base
    ]
    return base + [derived_layer_name(k, texture_px) for k in keys], keys


def _int_attr(group: Any, key: str, path: Path, code: str) -> int:
    if key not in group.attrs:
        raise InputDataError(
            f"{path}: tile {code}: no attribute {key!r} (it has {sorted(group.attrs)}); {_LAYOUT}"
        )
    value = np.asarray(group.attrs[key])
    if value.size != 1 or not np.issubdtype(value.dtype, np.number) or value.item() < 0:
        raise InputDataError(
            f"{path}: tile {code}: attribute {key} = {value.tolist()!r} is not a count of pixels; "
            f"{_LAYOUT}"
        )
    return int(value.item())


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise MissingInputError(
            f"{path}: not found; the reference dataset's folder needs "
            f"{', '.join(SPLIT_FILES.values())} (set reference: NAME: path to that folder)"
        )
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputDataError(
            f"{path}: not a readable HDF5 file ({exc}); replace or re-download it"
        ) from exc


def scan_reference(
    folder: PathLike,
    n_channels: int,
    regions: Mapping[str, str] = DEFAULT_REGIONS,
    name: str = "NAME",
) -> list[ReferenceTile]:
    """Every tile of ``train.hdf5``, ``val.hdf5`` and ``test.hdf5`` in ``folder``, checked
    before anything is written (layout, channel count, shapes, code, prefix), reading only
    attributes and shapes. Ordered by split, then prefix, row and column."""
    root = Path(folder)
    if not root.is_dir():
        raise MissingInputError(
            f"{root}: no such folder; set reference: {name}: path to the folder holding "
            f"{', '.join(SPLIT_FILES.values())}"
        )
    tiles: list[ReferenceTile] = []
    for split, fname in SPLIT_FILES.items():
        path = root / fname
        found = []
        with _open(path) as f:
            for code in f:
                group = f[code]
                if not isinstance(group, h5py.Group):
                    log.info("reference: %s: %s is not a tile group, skipped", path, code)
                    continue
                prefix, row, col = parse_tile_code(code, path)
                if prefix not in regions:
                    raise ConfigError(
                        f"{path}: tile {code}: prefix {prefix!r} is not in reference: {name}: "
                        f"regions ({dict(regions)}); add {prefix}: REGION_NAME there"
                    )
                for key in TILE_DATASETS:
                    if not isinstance(group.get(key), h5py.Dataset):
                        raise InputDataError(
                            f"{path}: tile {code}: no dataset {key!r} (it has "
                            f"{sorted(group)}); {_LAYOUT}"
                        )
                h, w, ph, pw = (_int_attr(group, k, path, code) for k in TILE_ATTRS)
                fshape, oshape = group["features"].shape, group["outlines"].shape
                if len(fshape) != 3 or len(oshape) != 3 or oshape != (*fshape[:2], 2):
                    raise InputDataError(
                        f"{path}: tile {code}: features {fshape} and outlines {oshape} do not "
                        f"match (H x W x channels and H x W x 2 expected); {_LAYOUT}"
                    )
                if fshape[2] != n_channels:
                    raise InputDataError(
                        f"{path}: tile {code}: features has {fshape[2]} channels but "
                        f"reference: {name}: channels names {n_channels}; list one layer name "
                        "(or null) per channel of this dataset version"
                    )
                if h == 0 or w == 0 or ph + h > fshape[0] or pw + w > fshape[1]:
                    raise InputDataError(
                        f"{path}: tile {code}: data area rows {ph}:{ph + h}, columns "
                        f"{pw}:{pw + w} is empty or outside the padded tile {fshape[:2]}; "
                        "the attributes height, width, pad_height, pad_width are wrong"
                    )
                found.append(
                    ReferenceTile(path, split, code, regions[prefix], row, col, h, w, ph, pw)
                )
        if not found:
            raise InputDataError(
                f"{path}: holds no tile group; a reference dataset needs tiles in each of "
                f"{', '.join(SPLIT_FILES.values())}"
            )
        found.sort(key=lambda t: (parse_tile_code(t.code, path)[0], t.row, t.col, t.code))
        tiles += found
    return tiles


def read_tile(
    f: h5py.File, tile: ReferenceTile, channel_idx: Sequence[int]
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """The data area of one tile: features (len(channel_idx), height, width) float32 and
    labels (height, width): 1 glacier, 0 background, ``IGNORE`` where neither is set."""
    g = f[tile.code]
    rows = slice(tile.pad_height, tile.pad_height + tile.height)
    cols = slice(tile.pad_width, tile.pad_width + tile.width)
    x = np.asarray(g["features"][rows, cols], dtype=np.float32)
    one_hot = np.asarray(g["outlines"][rows, cols])
    feats = np.ascontiguousarray(np.moveaxis(x, -1, 0)[list(channel_idx)])
    glacier, background = one_hot[..., 1] > 0.5, one_hot[..., 0] > 0.5
    labels = np.where(glacier, 1, np.where(background, 0, IGNORE)).astype(np.uint8)
    return feats, labels


class _StoreWriter:
    """The memory-mapped chip files and pixel store, filled tile by tile."""

    def __init__(self, paths: Sequence[Path], n_layers: int, n_chips: int, n_px: int, t: int):
        fax, fay, fas, fcx, fcy = paths
        self.ax = np.lib.format.open_memmap(fax, "w+", np.float32, (n_layers, n_px))
        self.ay = np.lib.format.open_memmap(fay, "w+", np.uint8, (n_px,))
        self.asp = np.lib.format.open_memmap(fas, "w+", np.uint8, (n_px,))
        self.cx = np.lib.format.open_memmap(fcx, "w+", np.float32, (n_chips, n_layers, t, t))
        self.cy = np.lib.format.open_memmap(fcy, "w+", np.uint8, (n_chips, t, t))
        self.t, self.offset = t, 0
        self.rows: list[dict[str, Any]] = []
        self.members: list[dict[str, Any]] = []
        self.labelled = dict.fromkeys(SPLITS, 0)

    def add(
        self, tile: ReferenceTile, year: int, x: NDArray[np.float32], y: NDArray[np.uint8]
    ) -> None:
        """Write one tile's layers ``x`` (C, h, w) and labels ``y`` (h, w): a store member
        padded to whole chips, and its chips."""
        t, (nr, nc) = self.t, tile.chips(self.t)
        ph, pw = nr * t, nc * t
        member = np.full((x.shape[0], ph, pw), np.nan, dtype=np.float32)
        member[:, : tile.height, : tile.width] = x
        valid = np.all(np.isfinite(member), axis=0)
        lab = np.full((ph, pw), IGNORE, dtype=np.uint8)
        lab[: tile.height, : tile.width] = y
        lab[~valid] = IGNORE
        sl = slice(self.offset, self.offset + ph * pw)
        self.ax[:, sl] = member.reshape(x.shape[0], -1)
        self.ay[sl] = lab.ravel()
        self.asp[sl] = SPLIT_CODES[tile.split]
        self.members.append(
            {
                "region": tile.region,
                "year": year,
                "height": ph,
                "width": pw,
                "offset": self.offset,
                "tile": tile.code,
                "split": tile.split,
            }
        )
        self.offset += ph * pw
        self.labelled[tile.split] += int((lab != IGNORE).sum())
        for r in range(nr):
            for c in range(nc):
                win = np.s_[r * t : (r + 1) * t, c * t : (c + 1) * t]
                n = len(self.rows)
                self.cx[n] = member[(slice(None), *win)]
                self.cy[n] = lab[win]
                self.rows.append(
                    {
                        "tile_id": n,
                        "split": tile.split,
                        "region": tile.region,
                        "year": year,
                        "row": tile.row,
                        "col": tile.col,
                        "left": c * t,
                        "bottom": -(r + 1) * t,
                        "right": (c + 1) * t,
                        "top": -r * t,
                        "valid_fraction": round(float(valid[win].mean()), 4),
                        "glacier_fraction": round(float((lab[win] == 1).mean()), 4),
                        "tile": tile.code,
                        "chip_row": r,
                        "chip_col": c,
                    }
                )

    def close(self) -> None:
        """Flush and release the memory maps."""
        for m in (self.ax, self.ay, self.asp, self.cx, self.cy):
            m.flush()
        del self.ax, self.ay, self.asp, self.cx, self.cy


def convert_reference(
    folder: PathLike,
    dest_dir: PathLike,
    year: int,
    tile_size: int = 128,
    channels: Sequence[str | None] = ALPS_CHANNELS,
    regions: Mapping[str, str] = DEFAULT_REGIONS,
    derived: Sequence[str] | None = None,
    texture_px: int = DEFAULT_TEXTURE_PX,
    name: str = "NAME",
) -> pd.DataFrame:
    """Convert the reference dataset in ``folder`` into the chip store in ``dest_dir``;
    returns the index table. ``derived`` / ``texture_px``: the derived layers, as the
    ``features:`` section gives them for feature stacks. ``name``: the dataset's key under
    ``reference:`` (in messages). Every chip of every tile is kept (its ``valid_fraction``
    says how much of it is data)."""
    if tile_size < 1:
        raise ConfigError(f"reference: {name}: tile_size {tile_size} must be positive")
    layers, keys = reference_layers(channels, derived, texture_px, name)
    channel_idx = [i for i, c in enumerate(channels) if c is not None]
    base = [str(channels[i]) for i in channel_idx]
    tiles = scan_reference(folder, len(channels), regions, name)
    t = tile_size
    n_chips = sum(a * b for a, b in (tile.chips(t) for tile in tiles))
    full = (slice(None), slice(None))
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    names = ("area_features", "area_labels", "area_split", "features", "labels")
    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(atomic_path(dest / f"{n}.npy")) for n in names]
        store = _StoreWriter(paths, len(layers), n_chips, n_chips * t * t, t)
        for path in dict.fromkeys(tile.path for tile in tiles):
            with _open(path) as f:
                for tile in (tile for tile in tiles if tile.path == path):
                    x, y = read_tile(f, tile, channel_idx)
                    bands = {b: x[i] for i, b in enumerate(base) if b in COMMON_NAMES}
                    derived_x = _compute_derived(bands, keys, texture_px, full)
                    store.add(
                        tile, int(year), np.concatenate([x, *(d[None] for d in derived_x)]), y
                    )
                    log.info(
                        "reference: %s %s (%s): %d x %d px, %d x %d chips",
                        tile.split,
                        tile.code,
                        tile.region,
                        tile.height,
                        tile.width,
                        *tile.chips(t),
                    )
        store.close()
    for split, n in store.labelled.items():
        if n == 0:
            raise InputDataError(
                f"{Path(folder) / SPLIT_FILES[split]}: no labelled pixel where every layer is "
                f"finite; check reference: {name}: channels against this dataset version"
            )
    index = pd.DataFrame(store.rows)
    write_json(
        {
            "layers": layers,
            "tile_size": t,
            "n_tiles": len(index),
            "buffer_px": 0,
            "members": store.members,
            "source": str(folder),
            "channels": list(channels),
            "texture_px": texture_px,
        },
        dest / "meta.json",
    )
    with atomic_path(dest / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    log.info(
        "reference: %d tiles, chips %s, labelled pixels %s; layers %s",
        len(tiles),
        index["split"].value_counts().to_dict(),
        store.labelled,
        layers,
    )
    return index
