"""Where each region/year's raw inputs are, for the workflow's input functions.

Real data (``{data_dir}/{region}/{year}/optical/``, ``.../sar/``, ``{data_dir}/dem/``,
``{data_dir}/inventory/{region}_{year}.gpkg``) is listed once per folder and cached, so
building a large DAG does not glob the same folder for every job. Demo regions (those under
``demo.worlds``) know their files before they exist, so the workflow can generate them.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyproj import Transformer
from pyproj.exceptions import CRSError, ProjError

from glaciermap.core.errors import ConfigError, MissingInputError
from glaciermap.core.grid import RegionGrid
from glaciermap.core.io import PathLike
from glaciermap.ingest.names import classify_sar_files, select_dem_tiles
from glaciermap.synthetic import layout as demo

log = logging.getLogger(__name__)

_SLC_RE = re.compile(r"((?:19|20)\d{6})(?:T\d{6})?_SLC\.tiff?$", re.IGNORECASE)
# Band files, product metadata (S2 MTD_*.xml, Landsat *_MTL.txt) and generic-image sidecars.
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".xml", "_mtl.txt", ".bands.yaml")

OPTICAL_HELP = (
    "put Sentinel-2 L2A/L1C band files (or .SAFE folders) or Landsat Collection 2 Level-2 "
    "scenes there"
)
SAR_HELP = "put Sentinel-1 backscatter (..._VV.tif, ..._VH.tif) and coherence (..._corr.tif) there"
DEM_HELP = "put Copernicus DEM tiles (Copernicus_DSM_COG_10_*_DEM.tif) there"


@dataclass(frozen=True)
class Missing:
    """An input that is absent: the path a user should fill and what to put there."""

    path: str
    help: str

    def message(self, region: str, year: int | None = None) -> str:
        """The error message for ``region`` (or ``region_year``): the folder, what to put there."""
        what = f"{region}_{year}" if year is not None else region
        return f"{what}: no input files in {self.path}/ ; {self.help} (see README 'Real data')"


@functools.lru_cache(maxsize=4096)
def _listing(folder: str) -> tuple[str, ...]:
    """All files below ``folder`` (recursive), sorted; empty if it does not exist."""
    out: list[str] = []
    for root, _dirs, files in os.walk(folder):
        out.extend(os.path.join(root, f) for f in files if not f.startswith("."))
    return tuple(sorted(out))


Box = tuple[float, float, float, float]
"""(left, bottom, right, top) in some CRS."""

Footprint = tuple[str, Box]
"""A raster's CRS (as text) and bounds in that CRS."""


def _read_footprint(path: str) -> Footprint | str:
    """The CRS and bounds of a raster from its header, or why they cannot be had."""
    import rasterio  # only where a shared folder has files: the DAG of others reads none

    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                return "it has no coordinate reference system"
            b = src.bounds
            return src.crs.to_string(), (b.left, b.bottom, b.right, b.top)
    except rasterio.errors.RasterioError as e:
        return f"it cannot be read as a raster ({str(e).splitlines()[0][:120]})"


@functools.lru_cache(maxsize=64)
def _transformer(src_crs: str, dst_crs: str) -> Transformer:
    return Transformer.from_crs(src_crs, dst_crs, always_xy=True)


def _box_in(footprint: Footprint, crs: str) -> Box | str:
    """A footprint's bounds in ``crs`` (densified as the SAR jobs' test does; infinite
    where it has no finite image there), or why its CRS cannot be transformed."""
    src_crs, (left, bottom, right, top) = footprint
    try:
        w, s, e, n = _transformer(src_crs, crs).transform_bounds(
            left, bottom, right, top, densify_pts=21
        )
    except (ProjError, CRSError, ValueError):
        return f"its CRS {src_crs} cannot be transformed"
    return (w, s, e, n)


def _meets(box: Box, other: Box) -> bool:
    """Strict overlap of two boxes of one CRS (the SAR jobs' footprint test); a box with a
    non-finite side meets nothing."""
    if not all(math.isfinite(v) for v in box):
        return False
    return bool(box[0] < other[2] and box[2] > other[0] and box[1] < other[3] and box[3] > other[1])


def reaches(footprint: Footprint, grid: RegionGrid) -> bool | None:
    """Whether a footprint intersects the grid, by the test the SAR jobs apply (bounds
    transformed into the grid's CRS, densified, strict overlap); None if its CRS cannot be
    transformed into the grid's."""
    box = _box_in(footprint, grid.crs)
    return None if isinstance(box, str) else _meets(box, grid.bounds)


def _window_box(grid: RegionGrid, window: tuple[int, int, int, int], halo: int = 1) -> Box:
    """The bounds, in the grid's CRS, of a window ``(row_off, col_off, height, width)`` of
    the grid grown by ``halo`` pixels."""
    r0, c0, h, w = window
    x0, y0 = grid.transform @ (c0 - halo, r0 - halo)
    x1, y1 = grid.transform @ (c0 + w + halo, r0 + h + halo)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


class FootprintCache:
    """Footprints of raster files, read from their headers once and remembered in a JSON
    file (by absolute path, size and modification time; a changed file is read again).
    Every DAG build, and every cluster job (which builds the DAG again), then reads the
    headers of new files only. The file is a cache: unreadable or absent means empty, and a
    failed write is ignored. Without ``path`` it remembers for this process only."""

    def __init__(self, path: PathLike | None = None):
        self.path = None if path is None else Path(path)
        self._known: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._known is None:
            self._known = {}
            if self.path is not None and self.path.exists():
                try:
                    data = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    data = None
                if isinstance(data, dict):
                    self._known = data
        return self._known

    def lookup(self, files: Sequence[str]) -> list[Footprint | str]:
        """The footprint of each file, or why it has none, in order."""
        known, changed = self._load(), False
        out: list[Footprint | str] = []
        for f in files:
            try:
                st = os.stat(f)
            except OSError as e:
                out.append(f"it cannot be opened ({e.strerror})")
                continue
            key, stamp = os.path.abspath(f), [st.st_size, st.st_mtime_ns]
            entry = known.get(key)
            if not _valid_entry(entry, stamp):
                found = _read_footprint(f)
                entry = [stamp, found if isinstance(found, str) else [found[0], list(found[1])]]
                known[key], changed = entry, True
            assert isinstance(entry, list)
            fp = entry[1]
            if isinstance(fp, str):
                out.append(fp)
            else:
                left, bottom, right, top = fp[1]
                out.append((fp[0], (left, bottom, right, top)))
        if changed and self.path is not None:
            self._save(known)
        return out

    def _save(self, known: dict[str, Any]) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        except OSError:
            return
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(known, fh)
            os.replace(tmp, self.path)  # atomic: parallel jobs never read half a file
        except OSError:
            Path(tmp).unlink(missing_ok=True)


def _valid_entry(entry: Any, stamp: list[int]) -> bool:
    """A cache entry of this file's size and time, in the current format."""
    if not isinstance(entry, list) or len(entry) != 2 or entry[0] != stamp:
        return False
    fp = entry[1]
    return isinstance(fp, str) or (
        isinstance(fp, list) and len(fp) == 2 and isinstance(fp[1], list) and len(fp[1]) == 4
    )


class InputCatalog:
    """Input paths of every region/year of a workflow configuration."""

    def __init__(
        self,
        config: Mapping[str, Any],
        footprint_cache: PathLike | None = None,
        warn: Callable[[str], None] = log.warning,
    ):
        self.config = config
        self.regions: Mapping[str, Any] = config.get("regions") or {}
        self._demo = {s.region: s for s in demo.world_specs(config)}
        self._demo_paths: dict[str, dict[str, list[Path]]] = {}
        self._check_demo_dirs()
        self.footprints = FootprintCache(footprint_cache)
        self.warn = warn
        self._warned: set[str] = set()

    # -- helpers ------------------------------------------------------------------------
    def region(self, region: str) -> Mapping[str, Any]:
        """The config of ``region``; :class:`ConfigError` if it is not under ``regions:``."""
        if region not in self.regions:
            raise ConfigError(
                f"region {region!r} is not in the config; add it under 'regions:' "
                f"(known: {sorted(self.regions)})"
            )
        return self.regions[region]

    def change_pairs(self) -> list[tuple[str, int, int]]:
        """(region, year1, year2) of ``changes: pairs:``, checked: known region, year1 < year2."""
        out = []
        for pair in (self.config.get("changes") or {}).get("pairs") or []:
            region, y1, y2 = str(pair).rsplit("_", 2)
            self.region(region)
            if int(y1) >= int(y2):
                raise ConfigError(
                    f"changes: pairs: {pair!r}: the first year must be the earlier one; "
                    f"write '{region}_{y2}_{y1}'"
                )
            out.append((region, int(y1), int(y2)))
        return out

    def data_dir(self, region: str) -> str:
        """The region's input root; demo regions always live under ``demo.DEMO_DIR``."""
        if self.is_demo(region):
            return demo.DEMO_DIR
        return str(self.region(region).get("data_dir", self.config.get("data_dir", "data")))

    def _check_demo_dirs(self) -> None:
        """Demo worlds are generated (workflow outputs) and real data folders are inputs only:
        the two must never share a folder, or a failed demo job could delete real files."""
        demo_root = Path(demo.DEMO_DIR).resolve()
        for region in self._demo:
            own = self.regions.get(region, {}).get("data_dir")
            if own is not None and Path(own).resolve() != demo_root:
                raise ConfigError(
                    f"regions: {region}: data_dir {own!r}: demo regions are generated under "
                    f"{demo.DEMO_DIR}/; remove data_dir from this region (or remove the region "
                    "from demo: worlds: to use real data there)"
                )
        user_dirs = {str(self.config.get("data_dir", "data"))} | {
            str(r["data_dir"])
            for name, r in self.regions.items()
            if name not in self._demo and r.get("data_dir") is not None
        }
        for d in sorted(user_dirs):
            root = Path(d).resolve()
            if self._demo and (root == demo_root or demo_root in root.parents):
                raise ConfigError(
                    f"data_dir {d!r} is or lies inside the generated demo folder {demo.DEMO_DIR}/; "
                    "keep real data in a folder of its own (e.g. data/)"
                )

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def grid(self, region: str) -> RegionGrid:
        """The region's analysis grid, from its ``crs``, ``bounds`` and ``resolution_m``
        (cached)."""
        r = self.region(region)
        return RegionGrid.from_bounds(r["crs"], r["bounds"], float(r["resolution_m"]))

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def lonlat_bounds(self, region: str) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees of the region's grid (cached)."""
        g = self.grid(region)
        w, s, e, n = _transformer(g.crs, "EPSG:4326").transform_bounds(*g.bounds, densify_pts=21)
        return (w, s, e, n)

    def is_demo(self, region: str) -> bool:
        """Whether the region is a generated demo world (listed under ``demo.worlds``)."""
        return region in self._demo

    def demo_files(self, region: str) -> dict[str, list[Path]]:
        """The files a demo region's world generation writes, by product key (computed once)."""
        if region not in self._demo_paths:
            self._demo_paths[region] = demo.product_paths(self._demo[region], self.data_dir(region))
        return self._demo_paths[region]

    def all_demo_files(self) -> list[str]:
        """Every file of every demo region, sorted: the outputs of demo generation."""
        return sorted(
            {str(p) for r in self._demo for files in self.demo_files(r).values() for p in files}
        )

    def years(self, region: str) -> list[int]:
        """The region's ``years:`` as integers (empty if not given)."""
        return [int(y) for y in self.region(region).get("years", [])]

    # -- inputs per stage ---------------------------------------------------------------
    def shared_dir(self, region: str, year: int, kind: str) -> str:
        """``{data_dir}/scenes/{year}/{kind}/``: scenes every region of that data folder uses
        (each takes what intersects its grid), so one scene serves several regions (optical
        scenes and SAR files)."""
        return f"{self.data_dir(region)}/scenes/{year}/{kind}"

    def _scene_files(
        self, region: str, year: int, kind: str, suffixes: tuple[str, ...]
    ) -> list[str]:
        folders = (
            f"{self.data_dir(region)}/{region}/{year}/{kind}",
            self.shared_dir(region, year, kind),
        )
        return [f for d in folders for f in _listing(d) if f.lower().endswith(suffixes)]

    def optical(self, region: str, year: int) -> list[str] | Missing:
        """Optical scene files of the region/year, from its own folder and the shared scenes folder
        (demo: the generated ones), or :class:`Missing` if a real region has none."""
        if self.is_demo(region):
            return [str(p) for p in self.demo_files(region).get(f"{year}/optical", [])]
        files = self._scene_files(region, year, "optical", RASTER_SUFFIXES)
        folder = f"{self.data_dir(region)}/{region}/{year}/optical"
        return files or Missing(
            folder, OPTICAL_HELP + f" (or in {self.shared_dir(region, year, 'optical')}/)"
        )

    def sar(self, region: str, year: int) -> list[str]:
        """SAR GeoTIFFs of the region/year: see :meth:`_sar_files` (cached: the DAG asks for
        them once per processing tile)."""
        return list(self._sar_files(region, year))

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def _sar_files(self, region: str, year: int) -> tuple[str, ...]:
        """SAR GeoTIFFs of the region/year (demo: the generated ones), maybe none: all of its
        own ``sar/`` folder, and those of the shared ``scenes/{year}/sar/`` folder whose
        footprint reaches the region's grid (:func:`reaches`, the SAR jobs' own test). A
        shared file named like one of the region's own is the region's copy: taken once.

        Sentinel-1 names carry no footprint, so the shared files' headers are read here (their
        CRS and bounds, no pixels), once per file, and remembered by :class:`FootprintCache`
        for the next DAG build and for cluster jobs. A shared file without a usable
        footprint is left out of every region, with one warning naming it."""
        if self.is_demo(region):
            return tuple(str(p) for p in self.demo_files(region).get(f"{year}/sar", []))
        tifs = (".tif", ".tiff")
        own = f"{self.data_dir(region)}/{region}/{year}/sar"
        files = [f for f in _listing(own) if f.lower().endswith(tifs)]
        names = {os.path.basename(f) for f in files}
        shared = [
            f
            for f in _listing(self.shared_dir(region, year, "sar"))
            if f.lower().endswith(tifs) and os.path.basename(f) not in names
        ]
        bounds = self.grid(region).bounds
        for f, box in zip(shared, self._grid_boxes(region, tuple(shared)), strict=True):
            if isinstance(box, str):
                self._warn(
                    f"{f}: {box}; left out of every region (fix it, or move it into a "
                    "region's own sar/ folder)"
                )
            elif _meets(box, bounds):
                files.append(f)
        return tuple(files)

    def _warn(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            self.warn(msg)

    def backscatter(self, region: str, year: int) -> list[str]:
        """The region/year's SAR files that are backscatter images."""
        return [path for kind, path in self._sar_kinds(region, year) if kind == "backscatter"]

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def _sar_kinds(self, region: str, year: int) -> tuple[tuple[str, str], ...]:
        """(kind, path) of each SAR file of the region/year, classified once: the DAG asks for
        them once per processing tile."""
        return tuple((s.kind, str(s.path)) for s in classify_sar_files(self.sar(region, year)))

    def slc(self, region: str, year: int) -> dict[str, str]:
        """Co-registered single-look complex images ``..._YYYYMMDD_SLC.tif`` by date."""
        return dict(self._slc(region, year))

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def _slc(self, region: str, year: int) -> tuple[tuple[str, str], ...]:
        out = {}
        for f in self.sar(region, year):
            m = _SLC_RE.search(os.path.basename(f))
            if m:
                out[m.group(1)] = f
        return tuple(sorted(out.items()))

    def slc_pairs(self, region: str, year: int) -> list[tuple[str, str]]:
        """Consecutive SLC dates, the pairs whose coherence the workflow estimates."""
        dates = list(self.slc(region, year))
        return list(itertools.pairwise(dates))

    def has_coherence(self, region: str, year: int) -> bool:
        """Coherence is delivered (``..._corr.tif``) or can be estimated from SLC pairs."""
        return bool(self.coherence(region, year) or self.slc_pairs(region, year))

    def coherence(self, region: str, year: int) -> list[str]:
        """The region/year's SAR files that are delivered coherence images (``..._corr.tif``)."""
        return [path for kind, path in self._sar_kinds(region, year) if kind == "coherence"]

    def sar_under(
        self, region: str, year: int, kind: str, window: tuple[int, int, int, int]
    ) -> list[str]:
        """The region/year's ``kind`` files (backscatter, coherence) that can reach a window
        ``(row_off, col_off, height, width)`` of its grid (a processing tile, grown by one
        pixel): a SAR tile job then depends on the dates over it, and a new or replaced
        date reruns only the tiles it reaches. Footprints come from the files' headers
        (:class:`FootprintCache`); a file without a finite one, and every file of a demo
        region (generated later), reaches every tile, and its job decides."""
        files = [path for k, path in self._sar_kinds(region, year) if k == kind]
        if self.is_demo(region) or not files:
            return files
        tile = _window_box(self.grid(region), window)
        boxes = self._grid_boxes(region, tuple(files))
        return [
            f
            for f, b in zip(files, boxes, strict=True)
            if isinstance(b, str) or not all(map(math.isfinite, b)) or _meets(b, tile)
        ]

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def _grid_boxes(self, region: str, files: tuple[str, ...]) -> tuple[Box | str, ...]:
        """Each file's bounds in the region grid's CRS, or why it has none (unreadable, no
        CRS, a CRS that cannot be transformed), computed once per region."""
        crs = self.grid(region).crs
        return tuple(
            fp if isinstance(fp, str) else _box_in(fp, crs) for fp in self.footprints.lookup(files)
        )

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def dem(self, region: str) -> list[str] | Missing:
        """DEM tiles covering the region's grid (with a 0.01 degree margin), or :class:`Missing`
        if there are none; demo regions get their generated DEM. Cached."""
        if self.is_demo(region):
            return [str(p) for p in self.demo_files(region)["dem"]]
        folder = f"{self.data_dir(region)}/dem"
        files = [f for f in _listing(folder) if f.lower().endswith((".tif", ".tiff"))]
        w, s, e, n = self.lonlat_bounds(region)
        sel = [str(p) for p in select_dem_tiles(files, (w - 0.01, s - 0.01, e + 0.01, n + 0.01))]
        return sel or Missing(
            folder, DEM_HELP + f" covering lon {w:.2f}..{e:.2f}, lat {s:.2f}..{n:.2f}"
        )

    def dem_under(self, region: str, window: tuple[int, int, int, int]) -> list[str] | Missing:
        """The region's DEM files that can reach a window ``(row_off, col_off, height, width)``
        of its grid (a processing tile with a one-pixel halo and a 0.01 degree margin):
        Copernicus tiles by their name's 1-degree bounds, other DEM files all. A tile job
        then depends on the few DEM tiles under it, not on the hundreds under an Alps-size
        region: a replaced DEM tile reruns the processing tiles it reaches, and the DAG stays
        small."""
        files = self.dem(region)
        if isinstance(files, Missing) or self.is_demo(region):
            return files
        g = self.grid(region)
        west, south, east, north = _transformer(g.crs, "EPSG:4326").transform_bounds(
            *_window_box(g, window), densify_pts=21
        )
        box = (west - 0.01, south - 0.01, east + 0.01, north + 0.01)
        return [str(p) for p in select_dem_tiles(files, box)]

    def has_dem(self, region: str) -> bool:
        """DEM tiles covering the region exist (demo regions always have them)."""
        return not isinstance(self.dem(region), Missing)

    @functools.cache  # noqa: B019 (one catalogue per workflow run)
    def input_kinds(self, region: str, year: int) -> frozenset[str]:
        """Which kinds of input a region/year has: optical, dem, backscatter, coherence
        (cached: every tile's feature job asks)."""
        kinds = {"optical"}
        if self.has_dem(region):
            kinds.add("dem")
        if self.backscatter(region, year):
            kinds.add("backscatter")
        if self.has_coherence(region, year):
            kinds.add("coherence")
        return frozenset(kinds)

    def where(self, region: str, year: int, kind: str) -> str:
        """The folder and what to put there for an input kind (for error messages)."""
        if kind == "dem":
            return f"{self.data_dir(region)}/dem/ ({DEM_HELP})"
        if kind in ("backscatter", "coherence"):
            shared = self.shared_dir(region, year, "sar")
            return f"{self.data_dir(region)}/{region}/{year}/sar/ or {shared}/ ({SAR_HELP})"
        return f"{self.data_dir(region)}/{region}/{year}/optical/ ({OPTICAL_HELP})"

    def inventory(self, region: str, year: int) -> str | None:
        """The region/year's glacier inventory file (demo: the generated one), or None if absent."""
        if self.is_demo(region):
            inv = self.demo_files(region).get(f"{year}/inventory")
            return str(inv[0]) if inv else None
        path = self.inventory_path(region, year)
        return path if os.path.exists(path) else None

    def inventory_path(self, region: str, year: int) -> str:
        """The region's ``inventory:`` (``{year}`` is filled in; one RGI/GLIMS file may serve
        several regions: each rasterizes what lies on its grid), else
        ``{data_dir}/inventory/{region}_{year}.gpkg``."""
        return self._polygon_file(region, year, "inventory")

    def _polygon_file(self, region: str, year: int, key: str, suffix: str = "") -> str:
        """The region's ``key:`` (``{year}``/``{region}`` filled in), else
        ``{data_dir}/inventory/{region}_{year}{suffix}.gpkg``."""
        own = self.region(region).get(key)
        if own:
            return str(own).format(year=year, region=region)
        return f"{self.data_dir(region)}/inventory/{region}_{year}{suffix}.gpkg"

    def debris(self, region: str, year: int) -> str | None:
        """Debris-cover polygons of the region/year (e.g. Scherler et al. 2018), whose
        glacier pixels are scored apart as debris-covered ice: the region's ``debris:`` key
        (``{year}``/``{region}`` filled in), else
        ``{data_dir}/inventory/{region}_{year}_debris.gpkg``
        if present; the demo writes its own."""
        if self.is_demo(region):
            found = self.demo_files(region).get(f"{year}/debris")
            return str(found[0]) if found else None
        path = self._polygon_file(region, year, "debris", "_debris")
        if self.region(region).get("debris") and not os.path.exists(path):
            raise MissingInputError(
                f"{region}: debris: {path} does not exist; fix the path or remove the key"
            )
        return path if os.path.exists(path) else None

    def require_inventory(self, region: str, year: int) -> str:
        """The region/year's glacier inventory file; :class:`MissingInputError` if there is none."""
        inv = self.inventory(region, year)
        if inv is None:
            raise MissingInputError(
                f"{region}_{year}: no glacier inventory at {self.inventory_path(region, year)}; "
                "labels and metrics need one (RGI, GLIMS or any polygon file; a region's "
                "inventory: key may point to a shared file)"
            )
        return inv
