"""Optical scene ingestion (Sentinel-2 L2A/L1C band files, Landsat 4-9 Collection 2 Level-2)
and compositing onto the region grid.

Reflectance bands are named by their STAC ``eo:common_name`` (blue green red nir swir1 swir2),
so Landsat 5 and Sentinel-2 epochs feed one model.

Cloud masks: Sentinel-2 L2A scene classification (SCL) classes 0 (no data), 1 (saturated),
3 (cloud shadow), 8, 9 (cloud medium/high probability) and 10 (cirrus) are masked; L1C has no
SCL, and is used unmasked (documented fallback; a cloud detector is future work). Landsat
``QA_PIXEL`` bits 0-4 (fill, dilated cloud, cirrus, cloud, cloud shadow) are masked. Snow is
kept: it is what we map.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window

from glaciermap.core.errors import ConfigError, InputDataError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import PathLike, names_unreadable_rasters, open_raster
from glaciermap.core.raster import grid_writer, tile_grid, tile_tags, write_vrt
from glaciermap.core.reproject import (
    CATEGORICAL,
    block_windows,
    footprint_overlaps,
    warped,
)
from glaciermap.ingest.harmonise import adjustment
from glaciermap.ingest.names import layer_unit

log = logging.getLogger(__name__)

COMMON_NAMES = ("blue", "green", "red", "nir", "swir1", "swir2")

S2_BAND_NAMES = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B08": "nir",
    "B11": "swir1",
    "B12": "swir2",
}
S2_SCL_MASKED = (0, 1, 3, 8, 9, 10)
_S2_RE = re.compile(
    r"^(?P<tile>T\d{2}[A-Z]{3})_(?P<sensing>\d{8}T\d{6})_(?P<band>B\d[\dA]|SCL)"
    r"(?:_(?P<res>\d{2})m)?\.(?:tif|tiff|jp2)$",
    re.IGNORECASE,
)
_S2_BASELINE_RE = re.compile(r"_N(\d{4})_")

LANDSAT_BANDS = {  # sensor prefix -> band file key -> common name
    "TM": {"B1": "blue", "B2": "green", "B3": "red", "B4": "nir", "B5": "swir1", "B7": "swir2"},
    "OLI": {"B2": "blue", "B3": "green", "B4": "red", "B5": "nir", "B6": "swir1", "B7": "swir2"},
}
LANDSAT_SENSOR = {
    "LT04": "TM",
    "LT05": "TM",
    "LE07": "TM",
    "LC08": "OLI",
    "LC09": "OLI",
    "LO08": "OLI",
    "LO09": "OLI",
}
LANDSAT_QA_MASKED_BITS = (0, 1, 2, 3, 4)
LANDSAT_L2_SCALE, LANDSAT_L2_OFFSET = 2.75e-5, -0.2
_LS_RE = re.compile(
    r"^(?P<sat>L[COTE]0\d)_(?P<level>L[12][A-Z]{2})_(?P<pathrow>\d{6})_(?P<date>\d{8})_\d{8}_"
    r"\d{2}_(?P<tier>T1|T2|RT)_(?P<band>SR_B\d+|QA_PIXEL|B\d+)\.tif{1,2}$",
    re.IGNORECASE,
)


@dataclass
class OpticalScene:
    """One acquisition: band files by common name, DN -> reflectance = DN * scale + offset."""

    sensor: str
    product: str
    date: str  # YYYY-MM-DD
    bands: dict[str, Path] = field(default_factory=dict)
    scale: float = 1e-4
    offset: float = 0.0
    nodata: float | None = 0  # DN of missing pixels; None: every DN is data
    qa: Path | None = None
    qa_kind: str = ""  # "scl", "qa_pixel" or "" (no mask)
    band_index: dict[str, int] = field(default_factory=dict)  # 1-based, default 1
    band_scale: dict[str, float] = field(default_factory=dict)  # per band, overrides scale
    band_offset: dict[str, float] = field(default_factory=dict)  # per band, overrides offset
    generic: bool = False  # user-described imagery: may lack some common bands

    def missing_bands(self) -> list[str]:
        """The common band names (:data:`COMMON_NAMES`) the scene has no file for."""
        return [b for b in COMMON_NAMES if b not in self.bands]


GENERIC_SUFFIX = ".bands.yaml"


def read_generic_scene(sidecar: Path) -> OpticalScene:
    """Imagery described by a sidecar YAML file whose name ends in ``.bands.yaml``.

    One multi-band GeoTIFF: name the sidecar after the image, ``scene.tif.bands.yaml`` beside
    ``scene.tif`` (or give ``image:``), and map common names to 1-based band numbers::

        sensor: planetscope
        date: 2021-08-18
        bands: {blue: 1, green: 2, red: 3, nir: 4}
        scale: 0.0001             # reflectance = DN * scale + offset (defaults 1e-4, 0)
        offset: 0
        nodata: 0                 # DN of missing pixels (default 0); null: every DN is data

    Separate band files: map common names to file names beside the sidecar (any sidecar
    name, e.g. ``LE07_149035_20020912.bands.yaml``), optionally with a band number::

        bands: {blue: LE07_B1.TIF, green: LE07_B2.TIF, red: {file: LE07_B3.TIF, band: 1}}

    Bands not listed are absent: feature sets that need them say so (e.g. use ``rgbn``).
    """
    import yaml

    try:
        spec = yaml.safe_load(sidecar.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        raise InputDataError(f"{sidecar}: not valid YAML{where} ({what}); fix the sidecar") from exc
    if not isinstance(spec, dict):
        raise InputDataError(
            f"{sidecar}: not a YAML mapping (sensor, date, bands, ...); fix the sidecar (see "
            "README 'Other imagery')"
        )
    bands = spec.get("bands") or {}
    if not isinstance(bands, dict) or not bands or [b for b in bands if b not in COMMON_NAMES]:
        unknown = [b for b in bands if b not in COMMON_NAMES] if isinstance(bands, dict) else []
        raise InputDataError(
            f"{sidecar}: 'bands' must map common names {list(COMMON_NAMES)} to band numbers "
            f"or band file names (unknown: {unknown}); fix the sidecar"
        )
    image = sidecar.parent / str(spec.get("image", sidecar.name.removesuffix(GENERIC_SUFFIX)))
    files: dict[str, Path] = {}
    index: dict[str, int] = {}
    for name, where in bands.items():
        if isinstance(where, bool) or not isinstance(where, int | str | dict):
            raise InputDataError(
                f"{sidecar}: bands: {name}: {where!r} is neither a band number nor a file name; "
                "fix the sidecar"
            )
        if isinstance(where, int):
            files[name], index[name] = image, where
        else:
            entry = where if isinstance(where, dict) else {"file": where}
            if "file" not in entry:
                raise InputDataError(
                    f"{sidecar}: bands: {name}: no 'file'; give 'file' (and 'band')"
                )
            files[name], index[name] = (
                sidecar.parent / str(entry["file"]),
                int(entry.get("band", 1)),
            )
    for name, f in files.items():
        if not f.exists():
            raise MissingInputError(
                f"{sidecar}: image {f.name} (band {name}) not found beside it; put it there or "
                "fix the sidecar"
            )
    for name, f in files.items():
        with open_raster(f) as src:
            count = src.count
        if not 1 <= index[name] <= count:
            raise InputDataError(
                f"{sidecar}: bands: {name}: band {index[name]}, but {f.name} has bands 1 to "
                f"{count}; fix the sidecar (band numbers start at 1)"
            )
    if "date" not in spec:
        raise InputDataError(f"{sidecar}: no date; give the acquisition 'date' (YYYY-MM-DD)")
    try:
        nodata = spec.get("nodata", 0)
        nodata = None if nodata is None else float(nodata)
        scale, offset = float(spec.get("scale", 1e-4)), float(spec.get("offset", 0.0))
    except (TypeError, ValueError) as exc:
        raise InputDataError(
            f"{sidecar}: scale, offset and nodata must be numbers (nodata may be null) ({exc}); "
            "fix the sidecar"
        ) from exc
    return OpticalScene(
        sensor=str(spec.get("sensor", "generic")),
        product=(image if image.exists() else sidecar).name.removesuffix(GENERIC_SUFFIX),
        date=str(spec["date"]),
        bands=files,
        band_index=index,
        scale=scale,
        offset=offset,
        nodata=nodata,
        generic=True,
    )


def _iso(date8: str) -> str:
    return f"{date8[:4]}-{date8[4:6]}-{date8[6:8]}"


def _s2_radiometry(band_file: Path) -> tuple[float, float]:
    """(scale, offset) of a Sentinel-2 band from its product metadata or baseline.

    Looks for ``MTD_MSIL2A.xml``/``MTD_MSIL1C.xml`` in the band's folder and up to four parents
    (the .SAFE layout); otherwise processing baseline >= 04.00 in a folder name means an
    offset of -1000 DN; quantification value 10000.
    """
    for parent in [band_file.parent, *list(band_file.parents)[:5]]:
        for name in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
            mtd = parent / name
            if mtd.exists():
                try:
                    root = ET.parse(mtd).getroot()
                except ET.ParseError as exc:
                    raise InputDataError(f"{mtd}: unreadable product metadata ({exc})") from exc
                quant, offset = 10000.0, 0.0
                for el in root.iter():
                    tag = el.tag.split("}")[-1]
                    if tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
                        quant = float(el.text)
                    elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text:
                        offset = float(el.text)
                return 1.0 / quant, offset / quant
    for part in band_file.parts[::-1]:
        m = _S2_BASELINE_RE.search(part)
        if m:
            return 1e-4, (-0.1 if int(m.group(1)) >= 400 else 0.0)
    log.warning("%s: no product metadata or baseline found; assuming no offset", band_file)
    return 1e-4, 0.0


def _landsat_l1_rescaling(band_file: Path, band: str) -> tuple[float, float, float]:
    """(REFLECTANCE_MULT, REFLECTANCE_ADD, SUN_ELEVATION) of a Level-1 band from the scene's
    ``*_MTL.txt`` beside it: TOA reflectance = (M * DN + A) / sin(sun elevation)."""
    product = band_file.name.rsplit("_", 1)[0]
    mtl = band_file.with_name(f"{product}_MTL.txt")
    if not mtl.exists():
        raise MissingInputError(
            f"{band_file}: Landsat Level-1 needs its metadata {mtl.name} beside it for the "
            "reflectance rescaling; copy it from the product, or use Level-2 (L2SP)"
        )
    values: dict[str, float] = {}
    for line in mtl.read_text(errors="replace").splitlines():
        key, _, val = line.partition("=")
        try:
            values[key.strip()] = float(val.strip().strip('"'))
        except ValueError:
            continue
    n = band.removeprefix("B")
    keys = (f"REFLECTANCE_MULT_BAND_{n}", f"REFLECTANCE_ADD_BAND_{n}", "SUN_ELEVATION")
    missing = [k for k in keys if k not in values]
    if missing:
        raise InputDataError(f"{mtl}: lacks {missing}; is it the scene's complete MTL file?")
    return values[keys[0]], values[keys[1]], values[keys[2]]


class SensorFamily:
    """How one family of products names its band files and how its DNs become reflectance.

    A family declares ``pattern`` (a regular expression on file names) and ``add`` (put a
    matched file into its scene). :func:`discover_scenes` hands each file to the first family
    whose pattern matches, so a new sensor is a new subclass in :data:`SENSOR_FAMILIES`.
    """

    name = ""
    pattern: re.Pattern[str]

    def add(self, f: Path, m: re.Match[str], scenes: dict[tuple[str, str], OpticalScene]) -> None:
        """Record band or QA file ``f`` (matched as ``m``) in its scene of ``scenes``."""
        raise NotImplementedError


class Sentinel2(SensorFamily):
    """Sentinel-2 L2A (``T43SDV_20210818T054639_B03_10m.jp2``, SCL cloud mask) and L1C
    (``T43SDV_20210818T054639_B03.jp2``, no mask) band files, as in a .SAFE folder or loose;
    the finest resolution of a band wins; scale and offset from the product metadata."""

    name = "sentinel-2"
    pattern = _S2_RE

    def __init__(self) -> None:
        self._res: dict[tuple[str, str, str], int] = {}

    def add(self, f: Path, m: re.Match[str], scenes: dict[tuple[str, str], OpticalScene]) -> None:
        """Record band or QA file ``f`` (matched as ``m``) in its scene of ``scenes``."""
        key = ("s2", f"{m['tile']}_{m['sensing']}")
        level = "L2A" if "L2A" in str(f) or m["res"] else "L1C"
        sc = scenes.setdefault(
            key,
            OpticalScene(
                sensor=f"sentinel-2-{level.lower()}", product=key[1], date=_iso(m["sensing"][:8])
            ),
        )
        band, res = m["band"].upper(), int(m["res"] or 0)
        if band == "SCL":
            sc.qa, sc.qa_kind = f, "scl"
        elif band in S2_BAND_NAMES:
            name = S2_BAND_NAMES[band]
            prev = self._res.get((*key, name))
            if prev is None or res < prev:  # keep the finest resolution
                sc.bands[name] = f
                self._res[(*key, name)] = res
                sc.scale, sc.offset = _s2_radiometry(f)


class Landsat(SensorFamily):
    """Landsat 4-9 Collection 2 band files: Level-2 surface reflectance (``SR_B*``, fixed
    scale/offset) or Level-1 (``B*``, top-of-atmosphere reflectance from the ``_MTL.txt``);
    ``QA_PIXEL`` is the cloud mask."""

    name = "landsat"
    pattern = _LS_RE

    def add(self, f: Path, m: re.Match[str], scenes: dict[tuple[str, str], OpticalScene]) -> None:
        """Record band or QA file ``f`` (matched as ``m``) in its scene of ``scenes``."""
        sat = m["sat"].upper()
        key = ("ls", f"{sat}_{m['pathrow']}_{m['date']}")
        sc = scenes.setdefault(
            key,
            OpticalScene(
                sensor=f"landsat-{int(sat[2:])}",
                product=key[1],
                date=_iso(m["date"]),
                scale=LANDSAT_L2_SCALE,
                offset=LANDSAT_L2_OFFSET,
            ),
        )
        band = m["band"].upper()
        if band == "QA_PIXEL":
            sc.qa, sc.qa_kind = f, "qa_pixel"
            return
        key_band = band.removeprefix("SR_")
        common = LANDSAT_BANDS[LANDSAT_SENSOR.get(sat, "OLI")].get(key_band)
        if common:
            sc.bands[common] = f
            if m["level"].upper().startswith("L1"):  # top-of-atmosphere reflectance
                mult, add, sun_elev = _landsat_l1_rescaling(f, key_band)
                k = 1.0 / np.sin(np.radians(sun_elev))
                sc.band_scale[common], sc.band_offset[common] = mult * k, add * k
                sc.sensor = f"landsat-{int(sat[2:])}-l1"


# The product families recognised by file name (a sidecar ``*.bands.yaml`` describes others).
SENSOR_FAMILIES: tuple[type[SensorFamily], ...] = (Sentinel2, Landsat)


def discover_scenes(files: Iterable[PathLike]) -> list[OpticalScene]:
    """Group band files into scenes: files a ``*.bands.yaml`` sidecar describes first, then
    each file by the first of :data:`SENSOR_FAMILIES` whose name pattern it matches.
    Unrecognised files are ignored; a scene lacking one of the six common bands is an error."""
    scenes: dict[tuple[str, str], OpticalScene] = {}
    families = [family() for family in SENSOR_FAMILIES]
    paths = sorted(Path(p) for p in files)
    generic = [read_generic_scene(f) for f in paths if f.name.endswith(GENERIC_SUFFIX)]
    # Files a sidecar describes are that scene's, whatever their names look like.
    claimed = {f.resolve() for sc in generic for f in sc.bands.values()}
    for f in paths:
        if f.name.endswith(GENERIC_SUFFIX) or f.resolve() in claimed:
            continue
        for family in families:
            m = family.pattern.match(f.name)
            if m:
                family.add(f, m, scenes)
                break
    out = list(generic)
    for sc in scenes.values():
        missing = sc.missing_bands()
        if missing:
            raise InputDataError(
                f"scene {sc.product} ({sc.sensor}): band files for {missing} not found beside "
                f"{next(iter(sc.bands.values()), 'its other files')}; add them or remove the scene"
            )
        out.append(sc)
    return sorted(out, key=lambda s: (s.date, s.product))


class _SceneReader:
    """Band and QA layers of one scene warped onto the grid, read window by window.

    The warped datasets always span the whole region grid, and a processing tile reads its
    window of them (``offset``: the tile's row and column on the grid). GDAL warps a warped
    dataset in chunks of its own blocks (512 x 128 px) and, ignoring ``XSCALE``/``YSCALE``
    there, sizes the resampling kernel from each chunk: a dataset spanning only the tile
    would chunk it differently from the whole grid, and a source in another orientation (a
    neighbouring UTM zone) would come out up to 2 DN different in a tile off the 512 px
    lattice. On the region's grid every tile reads the very same chunks."""

    def __init__(
        self,
        scene: OpticalScene,
        grid: RegionGrid,
        stack: ExitStack,
        threads: int,
        harmonise: str = "none",
        offset: tuple[int, int] = (0, 0),
    ):
        self.scene = scene
        self.offset = offset
        self.adjust = adjustment(scene.sensor, harmonise)  # band -> (slope, intercept)
        self.bands = {
            name: stack.enter_context(
                warped(
                    scene.bands[name],
                    grid,
                    None,  # bilinear, or the area average onto a coarser grid
                    src_nodata=scene.nodata,
                    threads=threads,
                    dtype="float32",
                    mem_limit_mb=128,  # one VRT per band and scene: keep each small
                )
            )
            for name in scene.bands
        }
        self.qa = (
            stack.enter_context(warped(scene.qa, grid, CATEGORICAL, threads=threads))
            if scene.qa is not None
            else None
        )

    def _on_grid(self, win: Window) -> Window:
        """A window of the tile as a window of the region grid the datasets span."""
        r0, c0 = self.offset
        return Window(win.col_off + c0, win.row_off + r0, win.width, win.height)

    def clear(self, win: Window) -> NDArray[np.bool_]:
        """True where the scene sees the ground (no cloud, shadow or fill)."""
        if self.qa is None:
            return np.ones((int(win.height), int(win.width)), dtype=bool)
        q = self.qa.read(1, window=self._on_grid(win)).astype(np.int64)
        if self.scene.qa_kind == "scl":
            return np.asarray(~np.isin(q, S2_SCL_MASKED))
        bits = sum(1 << b for b in LANDSAT_QA_MASKED_BITS)
        return np.asarray((q & bits) == 0)

    def reflectance(self, win: Window, names: Sequence[str]) -> NDArray[np.float32]:
        """(len(names), rows, cols) surface reflectance; masked and missing pixels are NaN."""
        out = np.empty((len(names), int(win.height), int(win.width)), dtype=np.float32)
        for i, name in enumerate(names):
            band = self.scene.band_index.get(name, 1)
            dn = self.bands[name].read(band, window=self._on_grid(win))
            sc = self.scene
            scale, offset = sc.band_scale.get(name, sc.scale), sc.band_offset.get(name, sc.offset)
            refl = dn * scale + offset
            if name in self.adjust:
                slope, intercept = self.adjust[name]
                refl = refl * slope + intercept
            out[i] = refl if sc.nodata is None else np.where(dn == sc.nodata, np.nan, refl)
        out[:, ~self.clear(win)] = np.nan
        return out


def _full(grid: RegionGrid) -> Window:
    return Window(0, 0, grid.width, grid.height)


def scene_reflectance(
    scene: OpticalScene, grid: RegionGrid, threads: int = 1
) -> NDArray[np.float32]:
    """Surface reflectance (bands, rows, cols) on the grid, bands in common-name order;
    masked and missing pixels are NaN."""
    with ExitStack() as stack:
        return _SceneReader(scene, grid, stack, threads).reflectance(
            _full(grid), present_bands([scene])
        )


def present_bands(scenes: Sequence[OpticalScene]) -> list[str]:
    """Common names every scene has, in :data:`COMMON_NAMES` order (at least blue..nir)."""
    names = [n for n in COMMON_NAMES if all(n in sc.bands for sc in scenes)]
    if not {"blue", "green", "red", "nir"} <= set(names):
        raise InputDataError(
            f"scenes {[sc.product for sc in scenes]} share only bands {names}; a composite "
            "needs at least blue, green, red and nir in every scene of the epoch"
        )
    return names


COMPOSITE_METHODS = ("median", "best")


def _day_of_year(date: str) -> int:
    y, m, d = (int(v) for v in date.split("-"))
    return dt.date(y, m, d).timetuple().tm_yday


def _composite_block(
    readers: Sequence[_SceneReader],
    win: Window,
    names: Sequence[str],
    method: str = "median",
    target_doy: int = 240,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Composite of one window and the count of clear observations.

    ``median``: per-pixel median of the clear observations. ``best``: per pixel, the clear
    observation acquired closest to ``target_doy`` (day of year; late in the ablation season
    seasonal snow is least), keeping the bands of one acquisition together.
    """
    arr = np.stack([r.reflectance(win, names) for r in readers])
    clear = np.isfinite(arr).all(axis=1)
    count = clear.sum(axis=0).astype(np.uint8)
    if method == "best":
        score = np.array([-abs(_day_of_year(r.scene.date) - target_doy) for r in readers])
        ranked = np.where(clear, score[:, None, None], -np.inf)
        pick = np.argmax(ranked, axis=0)
        best = np.take_along_axis(arr, pick[None, None], axis=0)[0]
        best[:, count == 0] = np.nan
        return best.astype(np.float32), count
    if method != "median":
        _check_method(method)
    with warnings.catch_warnings():  # all-NaN pixels (never clear) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(arr, axis=0).astype(np.float32)
    return med, count


def _check_method(method: str) -> None:
    if method not in COMPOSITE_METHODS:
        raise ConfigError(
            f"composite method {method!r} unknown (optical: composite); use one of "
            f"{list(COMPOSITE_METHODS)}"
        )


def composite(
    scenes: Sequence[OpticalScene],
    grid: RegionGrid,
    threads: int = 1,
    method: str = "median",
    target_doy: int = 240,
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Per-pixel median of the clear observations, and their count (whole grid in memory)."""
    if not scenes:
        raise MissingInputError("no optical scenes given for the composite")
    with ExitStack() as stack:
        readers = [_SceneReader(sc, grid, stack, threads) for sc in scenes]
        return _composite_block(readers, _full(grid), present_bands(scenes), method, target_doy)


def scene_overlaps(scene: OpticalScene, grid: RegionGrid) -> bool:
    """Whether a scene's footprint (its first band file's bounds) intersects the grid. A band
    file without a CRS is an error: it cannot be placed on any grid."""
    with open_raster(next(iter(scene.bands.values()))) as src:
        return footprint_overlaps(src, grid)


@names_unreadable_rasters
def build_optical_composite(
    files: Sequence[PathLike],
    grid_path: PathLike,
    dest: PathLike,
    threads: int = 1,
    min_coverage: float = 0.5,
    block: int = 1024,
    method: str = "median",
    target_doy: int = 240,
    harmonise: str = "none",
    tile: Window | None = None,
) -> None:
    """Ingest scenes from ``files``, composite them on the region grid, write ``dest``.

    ``tile``: composite only this window of the grid (a processing tile), on the tile's
    part of the grid, from the scenes that overlap it. Warps use a fixed resampling scale,
    so a mosaic of tiles equals the whole-grid composite. A tile that no scene covers holds
    NaN and a clear count of 0. ``min_coverage`` is then checked over the whole region by
    :func:`gather_optical_tiles`, from each tile's ``CLEAR_PIXELS`` tag.

    ``method``: ``median`` or ``best`` (see :func:`_composite_block`). ``harmonise``:
    ``oli`` adjusts TM/ETM+ surface reflectance onto OLI (:mod:`glaciermap.ingest.harmonise`),
    ``none`` leaves every sensor as delivered.

    Works block by block: memory is about ``scenes x 6 x block^2`` floats plus GDAL's warp
    buffers and block cache (``GDAL_CACHEMAX``, 5 % of RAM by default: a small cache slows
    pixel-interleaved multi-band files), whatever the scene and region sizes. Bands: the
    common names all scenes have (six for Sentinel-2 and Landsat) plus ``clear_count``.
    Tags: ``SENSOR``, ``ACQUISITION_DATES``. Raises :class:`InputDataError` (and writes
    nothing) when less than ``min_coverage`` of the region has a clear observation.
    """
    _check_method(method)
    adjustment("", harmonise)  # an unknown choice fails before any reading
    grid = RegionGrid.load(grid_path)
    scenes = discover_scenes(files)
    if not scenes:
        raise MissingInputError(
            f"no Sentinel-2 or Landsat band files recognised among {len(files)} files "
            f"(e.g. {Path(files[0]).parent if files else '?'}); see README 'Real data'"
        )
    outside = [sc for sc in scenes if not scene_overlaps(sc, grid)]
    for sc in outside:  # a shared folder serves many regions: take what intersects this one
        log.warning(
            "optical: %s (%s) does not overlap the region grid; skipped", sc.product, sc.date
        )
    scenes = [sc for sc in scenes if all(sc is not o for o in outside)]
    if not scenes:
        raise InputDataError(
            f"{dest}: none of the {len(outside)} optical scenes overlaps the region grid "
            f"{grid.bounds} ({grid.crs}); check the region's bounds/crs or add scenes covering it"
        )
    log.info("optical: %d scene(s) overlap the region, %d skipped", len(scenes), len(outside))
    names = present_bands(scenes)  # the region's bands, whatever covers this tile
    out_grid = grid
    if tile is not None:
        out_grid = tile_grid(grid, tile)
        scenes = [sc for sc in scenes if scene_overlaps(sc, out_grid)]
        log.info("optical: %d scene(s) overlap tile %s", len(scenes), tile)
    for sc in scenes:
        log.info("optical: %s %s (%s)", sc.sensor, sc.product, sc.date)
    covered = 0
    with ExitStack() as stack:
        offset = (0, 0) if tile is None else (int(tile.row_off), int(tile.col_off))
        readers = [_SceneReader(sc, grid, stack, threads, harmonise, offset) for sc in scenes]
        adjusted = sorted({r.scene.sensor for r in readers if r.adjust})
        if adjusted:
            log.info("optical: %s reflectance harmonised onto %s", ", ".join(adjusted), harmonise)
        tags = {
            "SENSOR": ",".join(sorted({s.sensor for s in scenes})),
            "ACQUISITION_DATES": ",".join(s.date for s in scenes),
            "COMPOSITE": method,
            "HARMONISED": f"{','.join(adjusted)} -> {harmonise}" if adjusted else "none",
            # scenes of the folder off the region (a shared folder): the log, the region's
            # composite and the report's map say which
            "SKIPPED_SCENES": ",".join(sorted(sc.product for sc in outside)),
        }
        layers = [*names, "clear_count"]
        dst = stack.enter_context(
            grid_writer(
                dest, out_grid, layers, "float32", np.nan, tags, [layer_unit(n) for n in layers]
            )
        )
        for win in block_windows(out_grid, block):
            if readers:
                med, count = _composite_block(readers, win, names, method, target_doy)
            else:  # no scene covers this tile
                shape = (int(win.height), int(win.width))
                med = np.full((len(names), *shape), np.nan, np.float32)
                count = np.zeros(shape, np.uint8)
            covered += int((count > 0).sum())
            dst.write(np.concatenate([med, count[None].astype(np.float32)]), window=win)
        dst.update_tags(CLEAR_PIXELS=str(covered), PIXELS=str(out_grid.width * out_grid.height))
        coverage = covered / (out_grid.width * out_grid.height)
        if tile is None and coverage < min_coverage:
            raise InputDataError(
                f"{dest}: only {coverage:.0%} of the region has a clear optical observation in "
                f"{[s.product for s in scenes]}; add scenes covering the region or fewer clouds"
            )
    log.info("optical composite: %d scenes, clear coverage %.1f%%", len(scenes), 100 * coverage)


def gather_optical_tiles(
    grid_path: PathLike,
    parts: Sequence[tuple[PathLike, Window]],
    dest: PathLike,
    min_coverage: float = 0.5,
) -> None:
    """The region's optical composite: a VRT mosaic ``dest`` of its tile composites (each at
    its window), written only when at least ``min_coverage`` of the region has a clear
    observation (summed from the tiles' ``CLEAR_PIXELS`` tags)."""
    grid = RegionGrid.load(grid_path)
    clear = 0
    sensors: set[str] = set()
    dates: set[str] = set()
    methods: set[str] = set()
    harmonised: set[str] = set()
    skipped: set[str] = set()
    for path, _ in parts:
        tags = tile_tags(path, "CLEAR_PIXELS", "optical")
        clear += int(tags["CLEAR_PIXELS"])
        sensors |= {s for s in tags.get("SENSOR", "").split(",") if s}
        dates |= {d for d in tags.get("ACQUISITION_DATES", "").split(",") if d}
        methods.add(tags.get("COMPOSITE", ""))
        if tags.get("HARMONISED", "none") != "none":
            harmonised.add(tags["HARMONISED"])
        skipped |= {p for p in tags.get("SKIPPED_SCENES", "").split(",") if p}
    coverage = clear / (grid.width * grid.height)
    if coverage < min_coverage:
        raise InputDataError(
            f"{dest}: only {coverage:.0%} of the region has a clear optical observation "
            f"(tiles {Path(parts[0][0]).parent}/); add scenes covering the region or fewer clouds"
        )
    region_tags = {
        "SENSOR": ",".join(sorted(sensors)),
        "ACQUISITION_DATES": ",".join(sorted(dates)),
        "COMPOSITE": ",".join(sorted(m for m in methods if m)),
        "HARMONISED": ";".join(sorted(harmonised)) or "none",
        "CLEAR_PIXELS": str(clear),
        "SKIPPED_SCENES": ",".join(sorted(skipped)),
    }
    write_vrt(dest, grid, parts, region_tags)
    log.info("optical composite: %d tiles, clear coverage %.1f%%", len(parts), 100 * coverage)
