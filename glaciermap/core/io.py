"""Atomic output writing and small raster I/O helpers.

Every output is written under a temporary name in the destination folder and renamed
when complete, so a killed job never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio._err import CPLE_BaseError

from glaciermap.core.errors import GlacierMapError, InputDataError, MissingInputError, OutputError

PathLike = str | os.PathLike[str]
P = ParamSpec("P")
R = TypeVar("R")


def remove_stale_temps(dest: PathLike) -> list[Path]:
    """Remove the temporary files a killed writer of ``dest`` left beside it (the hidden
    ``.{stem}.XXXXXXXX{suffix}`` names of :func:`atomic_path`, their ``.work`` and ``.aux.xml``
    companions); returns what was removed. Snakemake runs one job per output, so no live
    writer of ``dest`` can own them when its job starts again."""
    dest = Path(dest)
    pattern = re.compile(
        rf"^\.{re.escape(dest.stem)}\.[A-Za-z0-9_]{{8}}(?:\.work)?{re.escape(dest.suffix)}"
        r"(?:\.aux\.xml)?$"
    )
    removed = []
    if dest.parent.is_dir():
        for f in dest.parent.glob(f".{glob.escape(dest.stem)}.*"):
            if pattern.match(f.name) and f.is_file():
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed


@contextlib.contextmanager
def atomic_path(dest: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` on success.

    On an exception the temporary file is removed and ``dest`` is left untouched.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(dest)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=dest.suffix, dir=dest.parent)
    except OSError as exc:
        raise OutputError(
            f"{dest}: cannot create files in {dest.parent} ({exc.strerror or exc}); make the "
            "folder writable (or choose another output folder) and rerun"
        ) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # writers (GDAL) want to create the file themselves
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except (OSError, CPLE_BaseError) as exc:
        if isinstance(exc, GlacierMapError) or not (_disk_full(exc) or _no_space(dest.parent)):
            raise
        raise OutputError(
            f"{dest}: the disk is full (no space left while writing it); free space in "
            f"{dest.parent} (or choose another output folder) and rerun"
        ) from exc
    finally:
        for leftover in (tmp_path, tmp_path.with_name(tmp_path.name + ".aux.xml")):
            if leftover.exists():
                leftover.unlink()


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is not None and all(e is not s for s in seen):
            seen.append(e)
            todo += [e.__cause__, e.__context__]
    return seen


def _disk_full(exc: BaseException) -> bool:
    """Whether an error says the disk (or the user's quota) is full."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "Free disk space" in str(e):
            return True
    return False


NO_SPACE_BYTES = 16 * 2**20
"""Free space below which a failed write counts as a full disk (libtiff reports a full disk
only as "Write error at scanline ..." or "IO error writing tag data")."""


def _no_space(folder: Path) -> bool:
    """Whether the file system of ``folder`` has less than :data:`NO_SPACE_BYTES` free."""
    try:
        return shutil.disk_usage(folder).free < NO_SPACE_BYTES
    except OSError:
        return False


def _paths_in(values: Iterable[Any]) -> list[Path]:
    """The paths among call arguments (also inside lists and tuples)."""
    out: list[Path] = []
    for v in values:
        if isinstance(v, str | os.PathLike):
            out.append(Path(v))
        elif isinstance(v, list | tuple):
            out += _paths_in(v)
    return out


def unreadable_raster_error(exc: BaseException, inputs: Iterable[Any]) -> GlacierMapError | None:
    """The one-line error for a low-level raster error (GDAL could not read pixels of a
    truncated or corrupt file, or could not write them on a full disk) raised while a step
    read ``inputs``: the input GDAL names, what is wrong and what to do. None if the error
    names none of ``inputs`` (then it is not the user's data: a bug to report)."""
    if _disk_full(exc):
        detail = " ".join(str(exc).split())[:160]
        return OutputError(f"the disk is full ({detail}); free space and rerun")
    texts = [str(e) for e in _chain(exc)]
    files = [p for p in _paths_in(inputs) if p.suffix]  # not folders: "in" is in any text
    named = [p for p in files if any(p.name in t for t in texts)]
    if not named:
        return None
    path = max(named, key=lambda p: len(p.name))  # the most specific name GDAL gave
    detail = " ".join(texts[-1].split())[:160]
    return InputDataError(
        f"{path}: cannot read its pixels ({detail}); the file is truncated or corrupt: "
        "replace or re-download it (or rerun the step that wrote it)"
    )


def names_unreadable_rasters(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function reading rasters: a GDAL read error on one of the files among its
    arguments (a truncated download opens, then fails block by block with "Read failed. See
    previous exception") becomes an :class:`InputDataError` naming that file."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (rasterio.errors.RasterioIOError, CPLE_BaseError) as exc:
            clear = unreadable_raster_error(exc, [*args, *kwargs.values()])
            if clear is None:
                raise
            raise clear from exc

    return wrapper


# GDAL's block cache (MB) for steps that read every block once, in windows aligned to the
# blocks (gathers, evaluation): a larger cache only holds blocks that are not read again,
# and the workflow's default (processing: gdal_cache_mb, 512 MB) made such steps' memory
# grow with the region (the 8000^2 px predict gather: 735 MB with 512 MB, 248 MB with 64).
STREAM_CACHE_MB = 64
# ... and for steps whose windows are aligned with every input's blocks, so each block is
# decoded once (evaluation): enough for one row of decoded blocks of all inputs (a
# pixel-interleaved block of a few bands decodes into all its bands' cache blocks at once;
# below that it would be decoded again per band). 64 MB filled up with blocks never read
# again and made the 8000^2 px evaluation's peak grow with the region (206 -> 297 MB from
# one to 16 blocks; 206 -> 254 MB with 16).
READ_ONCE_CACHE_MB = 16


@contextlib.contextmanager
def gdal_cache(mb: float) -> Iterator[None]:
    """GDAL's block cache bounded to ``mb`` megabytes meanwhile, and set back afterwards.

    rasterio passes an integer ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``, in bytes:
    ``rasterio.Env(GDAL_CACHEMAX=64)`` is a 64-byte cache, not GDAL's "64 MB" reading of
    the environment variable. The size is process-wide, and a ``rasterio.Env`` entered
    while another is active (an open dataset keeps one) leaves it changed on exit, so the
    size before is put back explicitly (rasterio has no public getter for it).
    """
    from rasterio._env import get_gdal_config, set_gdal_config

    before = get_gdal_config("GDAL_CACHEMAX")
    try:
        with rasterio.Env(GDAL_CACHEMAX=int(mb * (1 << 20))):
            yield
    finally:
        if isinstance(before, int):
            set_gdal_config("GDAL_CACHEMAX", before)


def write_layers(dest: PathLike, layers: dict[str, Any]) -> None:
    """Write GeoDataFrames as the named layers of one GeoPackage (see :func:`layer_writer`)."""
    with layer_writer(dest) as write:
        for name, frame in layers.items():
            write(name, frame)


def reproducible_timestamp() -> str:
    """The time stamped into vector files (GeoPackage ``last_change``): ``SOURCE_DATE_EPOCH``
    (the reproducible-builds convention) or else 2000-01-01, so files are byte-reproducible."""
    import datetime as dt

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "946684800"))
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@contextlib.contextmanager
def layer_writer(dest: PathLike) -> Iterator[Callable[..., None]]:
    """A function ``write(name, frame, **kw)`` that writes a GeoDataFrame into layer ``name``
    of one GeoPackage, appended to what was written to that layer before (so a large product
    goes out in chunks; ``kw``: pyogrio's, e.g. ``geometry_type``, which a layer written in
    chunks should fix); the file is renamed to ``dest`` when the context ends (atomically:
    nothing on an error) and byte-reproducible: GDAL stamps each layer's ``last_change``
    with the current time unless ``OGR_CURRENT_DATE`` is set, so it is fixed to
    ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention) or else 2000-01-01."""
    import pyogrio

    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": reproducible_timestamp()})
    written: set[str] = set()
    with atomic_path(dest) as tmp:

        def write(name: str, frame: Any, **kw: Any) -> None:
            frame.to_file(
                tmp, driver="GPKG", layer=name, mode="a" if name in written else "w", **kw
            )
            written.add(name)

        yield write


def _finite(data: Any) -> Any:
    """``data`` with NaN and infinite floats replaced by None (JSON has no NaN)."""
    if isinstance(data, float) and not np.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def write_json(data: Any, dest: PathLike) -> None:
    """Write ``data`` as indented, valid JSON (undefined numbers as null), atomically."""
    text = json.dumps(_finite(data), indent=2, sort_keys=True, default=str, allow_nan=False)
    with atomic_path(dest) as tmp:
        tmp.write_text(text + "\n")


def read_json(path: PathLike) -> Any:
    """Read a JSON file, with a clear error when it is missing or broken."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: file not found; run the step that creates it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{path}: not valid JSON ({exc}); delete it and rerun") from exc


def open_raster(path: PathLike) -> rasterio.io.DatasetReader:
    """Open a raster for reading with a clear one-line error on failure."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: raster not found; check the path or rerun its step")
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputDataError(
            f"{path}: not a readable raster ({exc}); replace or re-download the file"
        ) from exc


def band_names(path: PathLike) -> list[str]:
    """Band descriptions of a raster (the layer names)."""
    with open_raster(path) as src:
        return [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]


@names_unreadable_rasters
def read_bands(
    path: PathLike, names: Sequence[str] | None = None
) -> tuple[NDArray[np.float32], list[str]]:
    """Read named bands (all by default) as float32 ``(band, row, col)``; nodata -> NaN."""
    with open_raster(path) as src:
        all_names = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
        wanted = list(all_names if names is None else names)
        missing = [n for n in wanted if n not in all_names]
        if missing:
            raise InputDataError(f"{path}: has no band(s) {missing}; it has {all_names}")
        idx = [all_names.index(n) + 1 for n in wanted]
        data = src.read(idx, masked=True).astype(np.float32)
        arr = np.ma.filled(data, np.nan).astype(np.float32)
    return arr, wanted


def outline_layer(path: PathLike) -> str | None:
    """The ``glaciers`` layer of a multi-layer outlines file (glaciers beside their
    complexes), else None: the file's only (or first) layer."""
    import pyogrio

    layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    return "glaciers" if "glaciers" in layers else None
