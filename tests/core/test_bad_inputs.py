"""One clear line for every bad input (issue 13, item 5): a catalogue of bad inputs.

Each case writes one bad input into a temporary folder and calls the package function the
workflow (or a notebook) calls with it. Every case must end in

* the expected :class:`~glaciermap.core.errors.GlacierMapError` subclass,
* a message on one line, reasonably short, that names the offending file (or config key)
  and says what to do (a remedy after a ``;``), and
* nothing lost or half-written: the files under the temporary folder are byte for byte
  those before the call (no destination, no ``.name.XXXXXXXX.tif`` temporaries, inputs
  untouched).

The table :data:`CASES` is the catalogue: id, setup (writes the bad input), the call that
must fail, the error class and what the message must name.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine

from glaciermap import api
from glaciermap.core.errors import (
    ConfigError,
    GlacierMapError,
    GridMismatchError,
    InputDataError,
    MissingInputError,
    MissingLayerError,
    OutputError,
)
from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ingest.insar import coherence_from_slc_files
from glaciermap.ingest.reference import reference_layers
from glaciermap.ml.chip_eval import evaluate_chips
from glaciermap.ml.features import model_layers
from glaciermap.ml.train import load_tiles, train_cnn
from glaciermap.products.changes import read_complexes

GRID = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 400500, 4000400), 10.0)  # 50 x 40
FAR = RegionGrid.from_bounds("EPSG:32643", (600000, 4200000, 600500, 4200400), 10.0)
OTHER = RegionGrid.from_bounds("EPSG:32643", (400000, 4000000, 400600, 4000400), 10.0)  # 60 x 40
RGBN = ["blue", "green", "red", "nir"]
MAX_LEN = 400
REMEDY = re.compile(
    r";.*\b(rerun|run|delete|replace|re-download|re-export|regenerate|check|add|use|put|give|"
    r"fix|choose|remove|assign|rebuild|lower|widen|pass|free|make|copy|retrain|write|name|"
    r"evaluate|keep|set|correct|move|train)\b",
    re.IGNORECASE,
)


@dataclass
class Ctx:
    """A case's folders (``in`` for inputs, ``out`` for outputs) and pytest's monkeypatch."""

    tmp: Path
    mp: pytest.MonkeyPatch

    @property
    def inp(self) -> Path:
        return self.tmp / "in"

    @property
    def out(self) -> Path:
        return self.tmp / "out"


# -- writers of (bad) inputs -----------------------------------------------------------------


def _tif(
    path: Path,
    names: list[str],
    grid: RegionGrid = GRID,
    crs: str | None = GRID.crs,
    dtype: str = "float32",
    nodata: float | None = None,
    data: np.ndarray | None = None,
    driver: str = "GTiff",
    directory_last: bool = False,
) -> Path:
    """A raster on ``grid`` (random values unless ``data``), band descriptions ``names``.

    The TIFF directory comes first (as in a COG: a cut download keeps it and loses pixels)
    unless ``directory_last`` (descriptions set after the pixels: GDAL rewrites the
    directory at the end, and a cut download loses it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        rng = np.random.default_rng(len(names))
        data = rng.uniform(0.05, 0.6, (len(names), *grid.shape))
        if np.dtype(dtype).kind in "ui":
            data = data * 10000
    profile: dict[str, Any] = {
        "driver": driver,
        "width": grid.width,
        "height": grid.height,
        "count": len(names),
        "dtype": dtype,
        "transform": grid.transform if crs is not None else Affine.identity(),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        if not directory_last:
            for i, n in enumerate(names, 1):
                dst.set_band_description(i, n)
        dst.write(np.asarray(data).astype(dtype))
        if directory_last:
            for i, n in enumerate(names, 1):
                dst.set_band_description(i, n)
    return path


def _truncate(path: Path, keep: float = 0.6) -> Path:
    """Cut a file short (a download that stopped): header kept, pixel data lost."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _grid(c: Ctx) -> Path:
    GRID.save(c.inp / "grid.json")
    return c.inp / "grid.json"


def _optical(c: Ctx, **kw: Any) -> Path:
    """An optical composite as the optical step writes it."""
    return _tif(c.inp / "optical.tif", [*RGBN, "clear_count"], **kw)


def _scene(c: Ctx, name: str = "scene.tif", sidecar: str | None = None, **kw: Any) -> Path:
    """A 4-band uint16 image with its ``.bands.yaml`` sidecar (``sidecar`` replaces it)."""
    img = _tif(c.inp / "optical" / name, ["b1", "b2", "b3", "b4"], dtype="uint16", **kw)
    text = "date: 2021-08-18\nbands: {blue: 1, green: 2, red: 3, nir: 4}\n"
    (img.parent / f"{name}.bands.yaml").write_text(text if sidecar is None else sidecar)
    return img


def _scene_files(c: Ctx) -> list[Path]:
    return sorted((c.inp / "optical").iterdir())


def _features(c: Ctx, layers: list[str] = RGBN, **kw: Any) -> Path:
    """A feature stack (layers + valid)."""
    data = np.random.default_rng(1).uniform(0, 1, (len(layers) + 1, *GRID.shape))
    data[-1] = 1
    return _tif(c.inp / "features.tif", [*layers, "valid"], data=data, **kw)


def _cnn(c: Ctx, layers: list[str] = RGBN, net_layers: int | None = None, base: int = 4) -> Path:
    """A model folder as train_cnn writes it (an untrained 2-level U-Net)."""
    from glaciermap.ml.models import build_cnn
    from glaciermap.ml.train import save_torch

    d = c.inp / "model"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(
        json.dumps({"arch": "unet", "params": {"base_channels": 4, "depth": 2}})
    )
    n = len(layers)
    (d / "norm.json").write_text(json.dumps({"layers": layers, "mean": [0] * n, "std": [1] * n}))
    net = build_cnn("unet", net_layers or n, base=base, depth=2)
    save_torch({"members": [net.state_dict()]}, d / "weights.pt")
    return d


def _rf(c: Ctx) -> Path:
    """A random-forest model folder with a real (tiny) forest."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    d = c.inp / "model"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"arch": "rf", "params": {}}))
    (d / "norm.json").write_text(json.dumps({"layers": RGBN, "mean": [0] * 4, "std": [1] * 4}))
    x = np.random.default_rng(0).uniform(size=(60, 4))
    skops.io.dump(
        RandomForestClassifier(3, random_state=0).fit(x, x[:, 0] > 0.5), d / "model.skops"
    )
    return d


def _predict(c: Ctx, **kw: Any) -> None:
    from glaciermap.ml.predict import sliding_window_predict

    sliding_window_predict(c.inp / "features.tif", c.inp / "model", c.out / "prob.tif", **kw)


def _inventory(c: Ctx, geoms: list[Any], crs: str | None = GRID.crs) -> Path:
    import geopandas as gpd

    path = c.inp / "inventory.gpkg"
    path.parent.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame(
        {"RGIId": [f"g{i}" for i in range(len(geoms))]}, geometry=geoms, crs=crs
    ).to_file(path, driver="GPKG")
    return path


def _box(grid: RegionGrid = GRID) -> Any:
    import shapely

    left, bottom, right, top = grid.bounds
    return shapely.box(left + 100, bottom + 100, right - 100, top - 100)


def _labels(c: Ctx) -> None:
    from glaciermap.ingest.labels import build_labels

    build_labels(c.inp / "inventory.gpkg", c.inp / "grid.json", c.out / "labels.tif")


def _tiles(c: Ctx, val: float = 0.15, test: float = 0.15) -> Path:
    """A small chip store (64 x 64 px, 16 px chips, 16 split blocks)."""
    from glaciermap.ml.chips import TileSource, make_tiles

    g = RegionGrid.from_bounds("EPSG:32643", (0, 0, 640, 640), 10.0)
    rng = np.random.default_rng(0)
    lab = (rng.uniform(size=g.shape) > 0.5).astype(np.uint8)
    feats = np.concatenate([rng.uniform(size=(4, *g.shape)), np.ones((1, *g.shape))])
    write_raster(c.tmp / "tf.tif", feats.astype(np.float32), g, [*RGBN, "valid"], nodata=np.nan)
    write_raster(c.tmp / "tl.tif", lab, g, ["glacier"])
    src = [TileSource("toy", 2020, c.tmp / "tf.tif", c.tmp / "tl.tif")]
    out = c.inp / "tiles"
    make_tiles(src, out, tile_size=16, block_tiles=1, val_frac=val, test_frac=test, buffer_px=2)
    return out


def _make_tiles(c: Ctx, features: str = "features.tif", labels: str = "labels.tif") -> None:
    from glaciermap.ml.chips import TileSource, make_tiles

    src = [TileSource("toy", 2020, c.inp / features, c.inp / labels)]
    make_tiles(src, c.out / "tiles", tile_size=16, block_tiles=1)


def _stack(c: Ctx, **kw: Any) -> None:
    from glaciermap.ml.features import build_feature_stack

    kw.setdefault("optical", c.inp / "optical.tif")
    build_feature_stack(c.inp / "grid.json", dest=c.out / "features.tif", **kw)


def _composite(c: Ctx, **kw: Any) -> None:
    from glaciermap.ingest.optical import build_optical_composite

    build_optical_composite(_scene_files(c), c.inp / "grid.json", c.out / "optical.tif", **kw)


def _dem_tile(c: Ctx, name: str = "dem_tile.tif", **kw: Any) -> Path:
    data = np.linspace(3000, 4000, GRID.width * GRID.height).reshape(1, *GRID.shape)
    kw.setdefault("data", data)
    return _tif(c.inp / "dem" / name, ["elevation"], **kw)


def _terrain(c: Ctx) -> None:
    from glaciermap.ingest.terrain import build_terrain

    build_terrain(
        sorted((c.inp / "dem").iterdir()),
        c.inp / "grid.json",
        c.out / "dem.tif",
        c.out / "slope.tif",
        c.out / "aspect.tif",
    )


def _sar(c: Ctx, name: str = "s1_20210801_VV.tif", **kw: Any) -> Path:
    return _tif(c.inp / "sar" / name, ["VV"], **kw)


def _backscatter(c: Ctx, **kw: Any) -> None:
    from glaciermap.ingest.sar import build_backscatter

    build_backscatter(
        sorted((c.inp / "sar").iterdir()), c.inp / "grid.json", c.out / "backscatter.tif", **kw
    )


def _coherence(c: Ctx, **kw: Any) -> None:
    from glaciermap.ingest.sar import build_coherence

    build_coherence(
        sorted((c.inp / "sar").iterdir()), c.inp / "grid.json", c.out / "coherence.tif", **kw
    )


def _readonly(c: Ctx) -> None:
    """``out/`` not writable: chmod, and (root may write anyway) a refusing ``mkstemp``."""
    c.out.mkdir(parents=True, exist_ok=True)
    c.out.chmod(0o555)
    if os.geteuid() == 0:
        import tempfile

        real = tempfile.mkstemp

        def refuse(*args: Any, **kwargs: Any) -> tuple[int, str]:
            if Path(str(kwargs.get("dir", ""))).resolve() == c.out.resolve():
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(c.out))
            return real(*args, **kwargs)

        c.mp.setattr(tempfile, "mkstemp", refuse)


def _disk_full_rasters(c: Ctx) -> None:
    """Every raster block write fails as on a full disk; an older ``labels.tif`` exists."""

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    c.mp.setattr(rasterio.io.DatasetWriter, "write", full)
    c.out.mkdir(parents=True, exist_ok=True)
    (c.out / "labels.tif").write_bytes(b"the previous labels: must survive")


def _disk_full_text(c: Ctx) -> None:
    def full(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    c.mp.setattr(Path, "write_text", full)


def _all(*steps: Callable[[Ctx], object]) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        for step in steps:
            step(c)

    return setup


def _write(rel: str, content: str | bytes) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        path = c.inp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return setup


def _edit_json(rel: str, edit: Callable[[dict[str, Any]], object]) -> Callable[[Ctx], None]:
    def setup(c: Ctx) -> None:
        path = c.inp / rel
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))

    return setup


def _nothing(c: Ctx) -> None:
    c.inp.mkdir(parents=True, exist_ok=True)


# -- the catalogue -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: the setup writing it, the call that must fail, how it must fail."""

    id: str
    setup: Callable[[Ctx], object]
    call: Callable[[Ctx], object]
    error: type[GlacierMapError]
    names: str  # the file (or config key) the message must name


def _sidecar_case(id: str, text: str, error: type[GlacierMapError] = InputDataError) -> Case:
    return Case(
        id,
        _all(_grid, lambda c: _scene(c, sidecar=text)),
        _composite,
        error,
        "scene.tif.bands.yaml",
    )


def _cnn_predict_case(
    id: str, setup: Callable[[Ctx], object], error: type[GlacierMapError], names: str, **kw: Any
) -> Case:
    return Case(id, _all(_features, setup), lambda c: _predict(c, **kw), error, names)


def _hidden(c: Ctx) -> None:
    from glaciermap.cli import cmd_summary

    c.mp.chdir(c.tmp)
    cmd_summary(argparse.Namespace(region_year="nowhere_2021"))


def _demo(c: Ctx, config: str) -> None:
    from glaciermap.cli import cmd_demo

    cmd_demo(argparse.Namespace(config=str(c.inp / config), out=str(c.out)))


CASES = [
    # -- region grid and its config -------------------------------------------------------
    Case(
        "grid-json-missing",
        _nothing,
        lambda c: RegionGrid.load(c.inp / "grid.json"),
        MissingInputError,
        "grid.json",
    ),
    Case(
        "grid-json-not-json",
        _write("grid.json", "{crs: "),
        lambda c: RegionGrid.load(c.inp / "grid.json"),
        InputDataError,
        "grid.json",
    ),
    Case(
        "grid-json-without-transform",
        _write("grid.json", '{"crs": "EPSG:32643"}'),
        lambda c: RegionGrid.load(c.inp / "grid.json"),
        InputDataError,
        "grid.json",
    ),
    Case(
        "config-region-bounds-empty",
        _nothing,
        lambda c: RegionGrid.from_bounds("EPSG:32643", (10, 0, 0, 10), 10),
        ConfigError,
        "bounds",
    ),
    Case(
        "config-region-crs-typo",
        _nothing,
        lambda c: RegionGrid.from_bounds("EPSG:326433", (0, 0, 10, 10), 10),
        ConfigError,
        "crs",
    ),
    Case(
        "config-region-resolution-zero",
        _nothing,
        lambda c: RegionGrid.from_bounds("EPSG:32643", (0, 0, 10, 10), 0),
        ConfigError,
        "resolution",
    ),
    # -- rasters: missing, not rasters, truncated, JP2 ------------------------------------------
    Case("raster-missing", _all(_grid), _stack, MissingInputError, "optical.tif"),
    Case(
        "raster-is-text",
        _all(_grid, _write("optical.tif", "<html>404</html>")),
        _stack,
        InputDataError,
        "optical.tif",
    ),
    Case(
        "raster-empty-file",
        _all(_grid, _write("optical.tif", b"")),
        _stack,
        InputDataError,
        "optical.tif",
    ),
    Case(
        "geotiff-truncated-directory-lost",
        _all(_grid, lambda c: _truncate(_optical(c, directory_last=True))),
        _stack,
        InputDataError,
        "optical.tif",
    ),
    Case(
        "geotiff-truncated-optical",
        _all(_grid, lambda c: _truncate(_optical(c))),
        _stack,
        InputDataError,
        "optical.tif",
    ),
    Case(
        "geotiff-truncated-notebook-load",
        lambda c: _truncate(_features(c)),
        lambda c: __import__("glaciermap.api").api.open_raster(c.inp / "features.tif", load=True),
        InputDataError,
        "features.tif",
    ),
    Case(
        "geotiff-truncated-scene",
        _all(_grid, lambda c: _truncate(_scene(c))),
        _composite,
        InputDataError,
        "scene.tif",
    ),
    Case(
        "jp2-truncated-scene",
        _all(_grid, lambda c: _truncate(_scene(c, "scene.jp2", driver="JP2OpenJPEG"), 0.9)),
        _composite,
        InputDataError,
        "scene.jp2",
    ),
    Case(
        "jp2-header-only-scene",
        _all(_grid, lambda c: _truncate(_scene(c, "scene.jp2", driver="JP2OpenJPEG"), 0.3)),
        _composite,
        InputDataError,
        "scene.jp2",
    ),
    Case(
        "geotiff-truncated-dem",
        _all(_grid, lambda c: _truncate(_dem_tile(c))),
        _terrain,
        InputDataError,
        "dem_tile.tif",
    ),
    Case(
        "geotiff-truncated-sar",
        _all(_grid, lambda c: _truncate(_sar(c))),
        _backscatter,
        InputDataError,
        "s1_20210801_VV.tif",
    ),
    Case(
        "geotiff-truncated-features",
        _all(_rf, lambda c: _truncate(_features(c))),
        _predict,
        InputDataError,
        "features.tif",
    ),
    # -- georeferencing: no CRS, off the region, other grid ----------------------------------
    Case(
        "scene-without-crs",
        _all(_grid, lambda c: _scene(c, crs=None)),
        _composite,
        InputDataError,
        "scene.tif",
    ),
    Case(
        "dem-without-crs",
        _all(_grid, lambda c: _dem_tile(c, crs=None)),
        _terrain,
        InputDataError,
        "dem_tile.tif",
    ),
    Case(
        "sar-without-crs",
        _all(_grid, lambda c: _sar(c, crs=None)),
        _backscatter,
        InputDataError,
        "s1_20210801_VV.tif",
    ),
    Case(
        "stack-input-without-crs",
        _all(
            _grid,
            _optical,
            lambda c: _tif(c.inp / "dem.tif", ["elevation"], crs=None),
            lambda c: _tif(c.inp / "slope.tif", ["slope"]),
        ),
        lambda c: _stack(c, dem=c.inp / "dem.tif", slope=c.inp / "slope.tif"),
        InputDataError,
        "dem.tif",
    ),
    Case(
        "scene-off-region",
        _all(_grid, lambda c: _scene(c, grid=FAR)),
        _composite,
        InputDataError,
        "optical.tif",
    ),
    Case(
        "dem-off-region",
        _all(_grid, lambda c: _dem_tile(c, grid=FAR)),
        _terrain,
        InputDataError,
        "dem_tile.tif",
    ),
    Case(
        "dem-covers-a-corner",
        _all(
            _grid,
            lambda c: _dem_tile(
                c, grid=RegionGrid.from_bounds(GRID.crs, (400400, 4000300, 400900, 4000700), 10.0)
            ),
        ),
        _terrain,
        InputDataError,
        "dem_tile.tif",
    ),
    Case(
        "sar-off-region",
        _all(_grid, lambda c: _sar(c, grid=FAR)),
        _backscatter,
        InputDataError,
        "s1_20210801_VV.tif",
    ),
    Case(
        "stack-dem-on-other-grid",
        _all(
            _grid,
            _optical,
            lambda c: _tif(c.inp / "dem.tif", ["elevation"], grid=OTHER),
            lambda c: _tif(c.inp / "slope.tif", ["slope"]),
        ),
        lambda c: _stack(c, dem=c.inp / "dem.tif", slope=c.inp / "slope.tif"),
        GridMismatchError,
        "dem.tif",
    ),
    Case(
        "labels-on-other-grid-than-features",
        _all(
            _features, lambda c: _tif(c.inp / "labels.tif", ["glacier"], grid=OTHER, dtype="uint8")
        ),
        _make_tiles,
        GridMismatchError,
        "labels.tif",
    ),
    # -- pixel content: NaN only, dtype, missing bands ------------------------------------------
    Case(
        "scene-all-nodata",
        _all(_grid, lambda c: _scene(c, nodata=0, data=np.zeros((4, 40, 50)))),
        _composite,
        InputDataError,
        "scene",
    ),
    Case(
        "features-all-nan-for-training",
        _all(
            lambda c: _tif(
                c.inp / "features.tif",
                [*RGBN, "valid"],
                data=np.stack([*[np.full(GRID.shape, np.nan)] * 4, np.zeros(GRID.shape)]),
            ),
            lambda c: _tif(c.inp / "labels.tif", ["glacier"], dtype="uint8"),
        ),
        _make_tiles,
        InputDataError,
        "features.tif",
    ),
    Case(
        "features-without-valid-band",
        _all(
            lambda c: _tif(c.inp / "features.tif", RGBN),
            lambda c: _tif(c.inp / "labels.tif", ["glacier"], dtype="uint8"),
        ),
        _make_tiles,
        InputDataError,
        "features.tif",
    ),
    Case(
        "slc-not-complex",
        _all(
            lambda c: _tif(c.inp / "a_SLC.tif", ["slc"]),
            lambda c: _tif(c.inp / "b_SLC.tif", ["slc"]),
        ),
        lambda c: coherence_from_slc_files(
            c.inp / "a_SLC.tif", c.inp / "b_SLC.tif", c.out / "coh.tif"
        ),
        InputDataError,
        "a_SLC.tif",
    ),
    Case(
        "coherence-not-magnitude",
        _all(
            _grid,
            lambda c: _sar(c, "s1_20210801_20210813_corr.tif", data=np.full((1, 40, 50), 3.1)),
        ),
        _coherence,
        InputDataError,
        "s1_20210801_20210813_corr.tif",
    ),
    Case(
        "sar-without-copol",
        _all(_grid, lambda c: _sar(c, "s1_20210801_VH.tif")),
        _backscatter,
        MissingInputError,
        "s1_20210801_VH.tif",
    ),
    Case(
        "optical-without-common-bands",
        _all(_grid, lambda c: _tif(c.inp / "optical.tif", ["b1", "b2", "b3", "b4"])),
        _stack,
        InputDataError,
        "optical.tif",
    ),
    Case(
        "featureset-needs-missing-layer",
        _nothing,
        lambda c: model_layers(
            "optical_dem", [*RGBN, "swir1", "swir2", "ndsi", "ndwi"], True, "features.tif"
        ),
        MissingLayerError,
        "features.tif",
    ),
    Case(
        "featureset-typo",
        _nothing,
        lambda c: model_layers("optical_dme", RGBN, True),
        MissingLayerError,
        "optical_dme",
    ),
    Case(
        "stack-lacks-model-layers",
        _all(_rf, lambda c: _features(c, ["blue", "green", "red"])),
        _predict,
        MissingInputError,
        "features.tif",
    ),
    # -- models: CNN weights, norm.json, config.json, random forest ------------------------
    _cnn_predict_case(
        "cnn-weights-missing",
        _all(_cnn, lambda c: (c.inp / "model/weights.pt").unlink()),
        MissingInputError,
        "weights.pt",
    ),
    _cnn_predict_case(
        "cnn-weights-garbage",
        _all(_cnn, _write("model/weights.pt", b"<html>")),
        InputDataError,
        "weights.pt",
    ),
    _cnn_predict_case(
        "cnn-weights-truncated",
        _all(_cnn, lambda c: _truncate(c.inp / "model/weights.pt", 0.5)),
        InputDataError,
        "weights.pt",
    ),
    _cnn_predict_case(
        "cnn-weights-of-other-layers", lambda c: _cnn(c, net_layers=7), InputDataError, "weights.pt"
    ),
    _cnn_predict_case(
        "cnn-weights-of-other-width", lambda c: _cnn(c, base=8), InputDataError, "weights.pt"
    ),
    _cnn_predict_case(
        "norm-json-not-json",
        _all(_cnn, _write("model/norm.json", "{layers")),
        InputDataError,
        "norm.json",
    ),
    _cnn_predict_case(
        "norm-json-without-std",
        _all(_cnn, _edit_json("model/norm.json", lambda d: d.pop("std"))),
        InputDataError,
        "norm.json",
    ),
    _cnn_predict_case(
        "norm-json-lengths-differ",
        _all(_cnn, _edit_json("model/norm.json", lambda d: d["mean"].pop())),
        InputDataError,
        "norm.json",
    ),
    _cnn_predict_case(
        "config-json-missing",
        _all(_cnn, lambda c: (c.inp / "model/config.json").unlink()),
        MissingInputError,
        "config.json",
    ),
    _cnn_predict_case(
        "config-json-unknown-arch",
        _all(_cnn, _edit_json("model/config.json", lambda d: d.update(arch="vit"))),
        InputDataError,
        "config.json",
    ),
    _cnn_predict_case(
        "rf-model-garbage",
        _all(_rf, _write("model/model.skops", b"PK\x03\x04xx")),
        InputDataError,
        "model.skops",
    ),
    _cnn_predict_case(
        "rf-model-only-legacy-pickle",
        _all(_rf, lambda c: (c.inp / "model/model.skops").rename(c.inp / "model/model.joblib")),
        MissingInputError,
        "model.joblib",
    ),
    # -- optical sidecars (*.bands.yaml) ----------------------------------------------------
    _sidecar_case("sidecar-invalid-yaml", "date: 2021-08-18\nbands: {blue: 1, green: 2\n"),
    _sidecar_case("sidecar-not-a-mapping", "- blue\n- green\n"),
    _sidecar_case("sidecar-band-name-typo", "date: 2021-08-18\nbands: {blue: 1, gren: 2}\n"),
    _sidecar_case("sidecar-without-date", "bands: {blue: 1, green: 2, red: 3, nir: 4}\n"),
    _sidecar_case(
        "sidecar-scale-not-a-number",
        "date: 2021-08-18\nscale: 1e-4x\nbands: {blue: 1, green: 2, red: 3, nir: 4}\n",
    ),
    _sidecar_case(
        "sidecar-band-file-missing",
        "date: 2021-08-18\nbands: {blue: b1.tif, green: 2, red: 3, nir: 4}\n",
        MissingInputError,
    ),
    _sidecar_case(
        "sidecar-band-number-beyond-image",
        "date: 2021-08-18\nbands: {blue: 1, green: 2, red: 3, nir: 9}\n",
    ),
    _sidecar_case(
        "sidecar-band-number-zero", "date: 2021-08-18\nbands: {blue: 0, green: 1, red: 2, nir: 3}\n"
    ),
    # -- values of config sections -----------------------------------------------------------
    Case(
        "config-features-derived-typo",
        _all(_grid, _optical),
        lambda c: _stack(c, derived=["ndsii"]),
        ConfigError,
        "derived",
    ),
    Case(
        "config-features-texture-even",
        _all(_grid, _optical),
        lambda c: _stack(c, texture_px=4),
        ConfigError,
        "texture_px",
    ),
    Case(
        "config-optical-composite-typo",
        _all(_grid, _scene),
        lambda c: _composite(c, method="medain"),
        ConfigError,
        "composite",
    ),
    Case(
        "config-sar-reducer-typo",
        _all(_grid, _sar),
        lambda c: _backscatter(c, reducer="meen"),
        ConfigError,
        "reducer",
    ),
    Case(
        "config-sar-baseline-excludes-all",
        _all(
            _grid,
            lambda c: _sar(c, "s1_20210801_20210901_corr.tif", data=np.full((1, 40, 50), 0.5)),
        ),
        lambda c: _coherence(c, max_baseline_days=12),
        InputDataError,
        "max_baseline_days",
    ),
    Case(
        "config-reference-channels-repeat",
        _nothing,
        lambda c: reference_layers(["blue", "blue"], name="alps"),
        ConfigError,
        "reference: alps: channels",
    ),
    # -- inference window and overlap -------------------------------------------------------
    _cnn_predict_case("inference-window-not-divisible", _cnn, ConfigError, "window", window=30),
    _cnn_predict_case(
        "inference-overlap-not-below-window", _cnn, ConfigError, "overlap", window=32, overlap=32
    ),
    _cnn_predict_case(
        "inference-overlap-negative", _cnn, ConfigError, "overlap", window=32, overlap=-4
    ),
    # -- outputs: read-only folder, full disk ---------------------------------------------------
    Case(
        "output-folder-read-only",
        _all(_grid, lambda c: _inventory(c, [_box()]), _readonly),
        _labels,
        OutputError,
        "labels.tif",
    ),
    Case(
        "disk-full-raster-keeps-old-file",
        _all(_grid, lambda c: _inventory(c, [_box()]), _disk_full_rasters),
        _labels,
        OutputError,
        "labels.tif",
    ),
    Case(
        "disk-full-json",
        _disk_full_text,
        lambda c: GRID.save(c.out / "grid.json"),
        OutputError,
        "grid.json",
    ),
    # -- inventories --------------------------------------------------------------------------
    Case("inventory-missing", _grid, _labels, MissingInputError, "inventory.gpkg"),
    Case(
        "inventory-garbage",
        _all(_grid, _write("inventory.gpkg", b"SQLite format 3\x00xx")),
        _labels,
        InputDataError,
        "inventory.gpkg",
    ),
    Case(
        "inventory-empty",
        _all(_grid, lambda c: _inventory(c, [])),
        _labels,
        InputDataError,
        "inventory.gpkg",
    ),
    Case(
        "inventory-points-only",
        _all(_grid, lambda c: _inventory(c, [_box().centroid, _box().centroid])),
        _labels,
        InputDataError,
        "inventory.gpkg",
    ),
    Case(
        "inventory-out-of-region",
        _all(_grid, lambda c: _inventory(c, [_box(FAR)])),
        _labels,
        InputDataError,
        "inventory.gpkg",
    ),
    Case(
        "inventory-without-crs",
        _all(_grid, lambda c: _inventory(c, [_box()], crs=None)),
        _labels,
        InputDataError,
        "inventory.gpkg",
    ),
    # -- training data (chip store) -----------------------------------------------------------
    Case(
        "tiles-meta-missing",
        _all(_tiles, lambda c: (c.inp / "tiles/meta.json").unlink()),
        lambda c: load_tiles(c.inp / "tiles", "rgbn"),
        MissingInputError,
        "meta.json",
    ),
    Case(
        "tiles-store-missing",
        _all(_tiles, lambda c: (c.inp / "tiles/area_labels.npy").unlink()),
        lambda c: load_tiles(c.inp / "tiles", "rgbn"),
        MissingInputError,
        "area_labels.npy",
    ),
    Case(
        "tiles-store-truncated",
        _all(_tiles, lambda c: _truncate(c.inp / "tiles/features.npy", 0.5)),
        lambda c: load_tiles(c.inp / "tiles", "rgbn"),
        InputDataError,
        "features.npy",
    ),
    Case(
        "tiles-without-val-chips",
        lambda c: _tiles(c, val=0, test=0),
        lambda c: train_cnn(c.inp / "tiles", "rgbn", "unet", c.out / "model"),
        InputDataError,
        "tiles",
    ),
    Case(
        "evaluate-split-typo",
        _all(_tiles, _rf),
        lambda c: evaluate_chips(c.inp / "tiles", c.inp / "model", c.out / "m.json", split="tset"),
        ConfigError,
        "tset",
    ),
    # -- command line and notebook API ----------------------------------------------------------
    Case(
        "cli-config-missing",
        _nothing,
        lambda c: _demo(c, "demo.yaml"),
        MissingInputError,
        "demo.yaml",
    ),
    Case(
        "cli-config-invalid-yaml",
        _write("demo.yaml", "demo: {worlds: [a\n"),
        lambda c: _demo(c, "demo.yaml"),
        ConfigError,
        "demo.yaml",
    ),
    Case(
        "cli-config-not-a-mapping",
        _write("demo.yaml", "- demo\n"),
        lambda c: _demo(c, "demo.yaml"),
        ConfigError,
        "demo.yaml",
    ),
    Case(
        "cli-summary-without-outlines",
        _nothing,
        _hidden,
        MissingInputError,
        "outlines/nowhere_2021.gpkg",
    ),
    Case(
        "api-dataarray-without-crs",
        _nothing,
        lambda c: api.predict(
            xr.DataArray(np.zeros((4, 8, 8)), dims=("band", "y", "x")), c.inp / "model"
        ),
        InputDataError,
        "features",
    ),
    Case(
        "outlines-for-changes-unreadable",
        _write("outlines.gpkg", b"not a geopackage"),
        lambda c: read_complexes(c.inp / "outlines.gpkg"),
        InputDataError,
        "outlines.gpkg",
    ),
]


def _files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (hidden ones too) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_catalogue_is_large_and_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_gives_one_clear_line(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = Ctx(tmp_path, monkeypatch)
    c.inp.mkdir()
    case.setup(c)
    before = _files(tmp_path)
    try:
        with pytest.raises(GlacierMapError) as info:
            case.call(c)
    finally:
        if c.out.exists():
            c.out.chmod(0o755)
    exc = info.value
    message = str(exc)
    assert isinstance(exc, case.error), (
        f"{type(exc).__name__}, not {case.error.__name__}: {message}"
    )
    assert "\n" not in message, message
    assert len(message) <= MAX_LEN, f"{len(message)} characters: {message}"
    assert case.names in message, f"does not name {case.names!r}: {message}"
    assert REMEDY.search(message), f"says nothing to do: {message}"
    monkeypatch.undo()  # compare the files with the real Path.write_text and friends restored
    assert _files(tmp_path) == before, "files changed, appeared or were left half-written"


def test_cli_prints_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line turns a bad input into ``glaciermap: error: ...`` and status 1."""
    from glaciermap.cli import main

    (tmp_path / "demo.yaml").write_text("demo: {worlds: [a\n")
    assert main(["demo", "--config", str(tmp_path / "demo.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("glaciermap: error: ") and "demo.yaml" in err[-1], err


@pytest.mark.skipif(not Path(sys.executable).with_name("snakemake").exists(), reason="no snakemake")
def test_config_typo_stops_the_dag_with_one_line(tmp_path: Path) -> None:
    """A typo inside a config section (``training: cnn: epocs``) stops ``snakemake -n`` with
    one line naming the section and the key, before any job."""
    import yaml

    repo = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((repo / ".test/config/config.yaml").read_text())
    cfg.setdefault("training", {}).setdefault("cnn", {})["epocs"] = 3
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("snakemake")),
            "-s",
            str(repo / "Snakefile"),
            "--directory",
            str(tmp_path),
            "-n",
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("glaciermap: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "training: cnn" in lines[0] and "epocs" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_read_errors_naming_no_input_are_left_alone() -> None:
    """A GDAL error that names none of a step's files is not the user's data: it stays as it
    is (a bug to report), never dressed up as a bad input."""
    from glaciermap.core.io import unreadable_raster_error

    err = rasterio.errors.RasterioIOError("Read failed: other.tif, band 1")
    assert unreadable_raster_error(err, ["in/optical.tif", "in"]) is None
    clear = unreadable_raster_error(err, [["in/other.tif"], "out/x.tif"])
    assert isinstance(clear, InputDataError) and str(clear).startswith("in/other.tif: ")
