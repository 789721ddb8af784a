"""A GeoPackage vector writer on Python's own ``sqlite3``: feature layers written in chunks.

Why not GDAL: the GDAL that writes vectors (pyogrio's) is a second copy of GDAL beside
rasterio's, and with pandas and geopandas it adds about 70 MB to a job's memory before the
first polygon; for the outlines, the job with the most polygons, this writer needs neither.

What it writes (OGC GeoPackage 1.3, what GDAL writes for the same data, and readable by
GDAL, QGIS, pyogrio and geopandas): the metadata tables ``gpkg_spatial_ref_sys``,
``gpkg_contents`` (each layer's extent, its ``last_change`` fixed for byte-reproducible files),
``gpkg_geometry_columns`` and ``gpkg_extensions``, GDAL's ``gpkg_ogr_contents`` (feature counts);
per layer a table ``fid INTEGER PRIMARY KEY AUTOINCREMENT, geom, <columns>`` with geometries
as GeoPackage blobs (header with the SRS id and the xy envelope, then little-endian ISO WKB)
and the R-tree spatial index (the ``gpkg_rtree_index`` extension) filled as rows come; its
maintenance triggers, which call GDAL's ``ST_*`` functions, are created when the file is
closed. The file is created with ``journal_mode=OFF``: it is a temporary file renamed into
place by the caller (:func:`glaciermap.core.io.atomic_path`), so a crash leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from rasterio.crs import CRS

from glaciermap.core.io import PathLike, atomic_path, reproducible_timestamp

APPLICATION_ID = 0x47504B47  # "GPKG"
USER_VERSION = 10300  # GeoPackage 1.3 (GDAL before 3.8 warns on 1.4; same tables)
COLUMN_TYPES = ("TEXT", "REAL", "INTEGER")
GEOMETRY_TYPES = ("GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOLYGON")
UNDEFINED_SRS = [
    ("Undefined Cartesian SRS", -1, "NONE", -1, "undefined", "undefined Cartesian SRS"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic SRS"),
]
CUSTOM_SRS_ID = 100000  # GDAL's first id for a CRS without an EPSG code
_HEADER = struct.Struct("<2sBBi4d")  # magic, version, flags, srs id, minx maxx miny maxy
_FLAGS = 0b0000_0011  # little endian, envelope [minx, maxx, miny, maxy]


def geometry_blobs(
    geoms: NDArray[np.object_], srs_id: int
) -> tuple[list[bytes | None], NDArray[np.float64]]:
    """GeoPackage geometry blobs of ``geoms`` (None stays None) and their bounds
    ``(n, 4)`` as ``minx, miny, maxx, maxy`` (NaN for None and empty geometries)."""
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso")
    bounds = shapely.bounds(geoms)
    blobs: list[bytes | None] = []
    for w, (x0, y0, x1, y1) in zip(wkb.tolist(), bounds.tolist(), strict=True):
        if w is None:
            blobs.append(None)
        elif x0 != x0:  # empty: no envelope (flags 0b1 << 4 marks it empty)
            blobs.append(_HEADER.pack(b"GP", 0, 0b0001_0001, srs_id, 0, 0, 0, 0)[:8] + w)
        else:
            blobs.append(_HEADER.pack(b"GP", 0, _FLAGS, srs_id, x0, x1, y0, y1) + w)
    return blobs, bounds


@dataclass
class _Layer:
    columns: dict[str, str]
    geometry_type: str
    count: int = 0
    extent: list[float] = field(default_factory=lambda: [np.inf, np.inf, -np.inf, -np.inf])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class GeoPackageWriter:
    """Feature layers of one new GeoPackage at ``path`` (which must not exist), all in the
    CRS ``crs``: :meth:`add_layer`, then :meth:`append` in chunks, then :meth:`close`
    (or use as a context manager: closed on success, the file removed on an error)."""

    def __init__(self, path: str | os.PathLike[str], crs: CRS | str):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: exists already; a GeoPackage is written new")
        self.crs = CRS.from_user_input(crs)
        self._layers: dict[str, _Layer] = {}
        # one thread at a time, not always the one that opened it (outlines: a worker)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _os_error(self.path, exc) from exc
        try:
            self._init_db()
        except sqlite3.Error as exc:
            self._db.close()
            raise _os_error(self.path, exc) from exc

    def _init_db(self) -> None:
        db = self._db
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {USER_VERSION}")
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        db.execute(
            "CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT "
            "NULL PRIMARY KEY, organization TEXT NOT NULL, organization_coordsys_id INTEGER "
            "NOT NULL, definition TEXT NOT NULL, description TEXT)"
        )
        db.execute(
            "CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT "
            "NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '', last_change "
            "DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), min_x DOUBLE, "
            "min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER, CONSTRAINT "
            "fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))"
        )
        db.execute(
            "CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT "
            "NOT NULL, geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT "
            "NOT NULL, m TINYINT NOT NULL, CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, "
            "column_name), CONSTRAINT uk_gc_table_name UNIQUE (table_name), CONSTRAINT "
            "fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name), "
            "CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys "
            "(srs_id))"
        )
        db.execute(
            "CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, extension_name "
            "TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL, CONSTRAINT ge_tce "
            "UNIQUE (table_name, column_name, extension_name))"
        )
        db.execute(
            "CREATE TABLE gpkg_ogr_contents (table_name TEXT NOT NULL PRIMARY KEY, "
            "feature_count INTEGER DEFAULT NULL)"
        )
        epsg = self.crs.to_epsg()
        self.srs_id = CUSTOM_SRS_ID if epsg is None else int(epsg)
        wkt = self.crs.to_wkt(version="WKT1_GDAL")
        name = _crs_name(wkt)
        rows = [*UNDEFINED_SRS]  # the specification's three: undefined, and WGS 84
        if self.srs_id != 4326:
            wgs84 = CRS.from_epsg(4326).to_wkt(version="WKT1_GDAL")
            rows.append(("WGS 84 geodetic", 4326, "EPSG", 4326, wgs84, "WGS 84"))
        db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute(
            "INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, NULL)",
            (name, self.srs_id, "NONE" if epsg is None else "EPSG", self.srs_id, wkt),
        )
        db.execute("COMMIT")

    def __enter__(self) -> GeoPackageWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.close()
        else:
            self._db.close()
            self.path.unlink(missing_ok=True)

    def add_layer(
        self, name: str, columns: Mapping[str, str], geometry_type: str = "GEOMETRY"
    ) -> None:
        """A new, empty layer ``name`` with attribute ``columns`` (name: ``TEXT``, ``REAL``
        or ``INTEGER``) and geometries of ``geometry_type`` (one of :data:`GEOMETRY_TYPES`)."""
        if name.lower() in {k.lower() for k in self._layers}:  # SQLite's names ignore case
            raise ValueError(f"layer {name} exists already")
        bad = {k: v for k, v in columns.items() if v not in COLUMN_TYPES}
        reserved = {"fid", "geom"} & {k.lower() for k in columns}
        if bad or geometry_type not in GEOMETRY_TYPES or reserved:
            raise ValueError(f"layer {name}: bad columns {columns} or type {geometry_type}")
        t, r = _quote(name), _quote(f"rtree_{name}_geom")
        cols = "".join(f", {_quote(k)} {v}" for k, v in columns.items())
        self._run(
            f"CREATE TABLE {t} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
            f"geom {geometry_type}{cols})",
            f"CREATE VIRTUAL TABLE {r} USING rtree(id, minx, maxx, miny, maxy)",
            (
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change, srs_id) VALUES (?, 'features', ?, '', ?, ?)",
                (name, name, reproducible_timestamp(), self.srs_id),
            ),
            (
                "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)",
                (name, geometry_type, self.srs_id),
            ),
            (
                "INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
                "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
                (name,),
            ),
            ("INSERT INTO gpkg_ogr_contents VALUES (?, 0)", (name,)),
        )
        self._layers[name] = _Layer(dict(columns), geometry_type)

    def append(
        self,
        name: str,
        geoms: Sequence[shapely.Geometry | None] | NDArray[np.object_],
        values: Mapping[str, Sequence[Any]],
    ) -> None:
        """Append features to layer ``name``: ``geoms`` and one sequence per column in
        ``values`` (every column, each as long as ``geoms``; None is NULL)."""
        layer = self._layers[name]
        if set(values) != set(layer.columns):
            raise ValueError(f"layer {name}: columns {sorted(values)}, not {list(layer.columns)}")
        n = len(geoms)
        if any(len(v) != n for v in values.values()):
            raise ValueError(f"layer {name}: columns of other lengths than the {n} geometries")
        data, bounds = geometry_blobs(np.asarray(geoms, dtype=object), self.srs_id)
        fid0 = layer.count + 1
        cols = [values[k] for k in layer.columns]
        rows = zip(range(fid0, fid0 + n), data, *cols, strict=True)
        marks = ", ".join("?" * (len(cols) + 2))
        t, r = _quote(name), _quote(f"rtree_{name}_geom")
        ok = ~np.isnan(bounds[:, 0])
        fids = np.arange(fid0, fid0 + n)[ok].tolist()
        b = bounds[ok]
        box = (b[:, 0].tolist(), b[:, 2].tolist(), b[:, 1].tolist(), b[:, 3].tolist())
        index = zip(fids, *box, strict=True)  # id, minx, maxx, miny, maxy
        self._run(
            (f"INSERT INTO {t} VALUES ({marks})", rows),
            (f"INSERT INTO {r} VALUES (?, ?, ?, ?, ?)", index),
            many=True,
        )
        layer.count += n
        if len(b):
            e = layer.extent
            e[:2] = np.minimum(e[:2], b[:, :2].min(axis=0)).tolist()
            e[2:] = np.maximum(e[2:], b[:, 2:].max(axis=0)).tolist()

    def close(self) -> None:
        """Write the layers' extents and feature counts and the R-trees' triggers; close."""
        try:
            statements: list[Any] = []
            for name, layer in self._layers.items():
                ext = layer.extent if np.isfinite(layer.extent[0]) else [None] * 4
                statements += [
                    (
                        "UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? "
                        "WHERE table_name = ?",
                        (*ext, name),
                    ),
                    (
                        "UPDATE gpkg_ogr_contents SET feature_count = ? WHERE table_name = ?",
                        (layer.count, name),
                    ),
                    *_triggers(name),
                ]
            self._run(*statements)
        finally:
            self._db.close()

    def _run(self, *statements: Any, many: bool = False) -> None:
        """Run ``statements`` (SQL, or SQL and its parameters) in one transaction."""
        db = self._db
        try:
            db.execute("BEGIN")
            for s in statements:
                sql, args = (s, ()) if isinstance(s, str) else s
                if many:
                    db.executemany(sql, args)
                else:
                    db.execute(sql, args)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise _os_error(self.path, exc) from exc


@contextlib.contextmanager
def geopackage(dest: PathLike, crs: CRS | str) -> Iterator[GeoPackageWriter]:
    """A :class:`GeoPackageWriter` on a temporary file renamed to ``dest`` when the block
    ends without an error (else removed, ``dest`` untouched)."""
    with atomic_path(dest) as tmp, GeoPackageWriter(tmp, crs) as writer:
        yield writer


def _crs_name(wkt: str) -> str:
    """The name of a CRS from its WKT (the first quoted string)."""
    return wkt.split('"', 2)[1] if '"' in wkt else "custom"


def _os_error(path: Path, exc: sqlite3.Error) -> OSError:
    """An sqlite error as an ``OSError`` (``ENOSPC`` where the disk is full)."""
    full = "full" in str(exc)
    return OSError(
        errno.ENOSPC if full else errno.EIO,
        "No space left on device" if full else f"GeoPackage write failed ({exc})",
        str(path),
    )


def _triggers(name: str) -> list[str]:
    """The R-tree maintenance triggers of the GeoPackage specification (annex F.3)."""
    t, r, g = _quote(name), _quote(f"rtree_{name}_geom"), '"geom"'
    box = f"NEW.fid, ST_MinX(NEW.{g}), ST_MaxX(NEW.{g}), ST_MinY(NEW.{g}), ST_MaxY(NEW.{g})"
    new_ok = f"(NEW.{g} NOTNULL AND NOT ST_IsEmpty(NEW.{g}))"
    old_ok = f"(OLD.{g} NOTNULL AND NOT ST_IsEmpty(OLD.{g}))"
    new_no = f"(NEW.{g} ISNULL OR ST_IsEmpty(NEW.{g}))"
    old_no = f"(OLD.{g} ISNULL OR ST_IsEmpty(OLD.{g}))"
    trig = f"CREATE TRIGGER {_quote(f'rtree_{name}_geom')[:-1]}"
    return [
        f'{trig}_insert" AFTER INSERT ON {t} WHEN {new_ok} BEGIN INSERT OR REPLACE INTO {r} '
        f"VALUES ({box}); END",
        f'{trig}_update6" AFTER UPDATE OF {g} ON {t} WHEN OLD.fid = NEW.fid AND {new_ok} '
        f"AND {old_ok} BEGIN UPDATE {r} SET minx = ST_MinX(NEW.{g}), maxx = ST_MaxX(NEW.{g}), "
        f"miny = ST_MinY(NEW.{g}), maxy = ST_MaxY(NEW.{g}) WHERE id = NEW.fid; END",
        f'{trig}_update7" AFTER UPDATE OF {g} ON {t} WHEN OLD.fid = NEW.fid AND {new_ok} '
        f"AND {old_no} BEGIN INSERT INTO {r} VALUES ({box}); END",
        f'{trig}_update2" AFTER UPDATE OF {g} ON {t} WHEN OLD.fid = NEW.fid AND {new_no} '
        f"BEGIN DELETE FROM {r} WHERE id = OLD.fid; END",
        f'{trig}_update5" AFTER UPDATE ON {t} WHEN OLD.fid != NEW.fid AND {new_ok} BEGIN '
        f"DELETE FROM {r} WHERE id = OLD.fid; INSERT OR REPLACE INTO {r} VALUES ({box}); END",
        f'{trig}_update4" AFTER UPDATE ON {t} WHEN OLD.fid != NEW.fid AND {new_no} BEGIN '
        f"DELETE FROM {r} WHERE id IN (OLD.fid, NEW.fid); END",
        f'{trig}_delete" AFTER DELETE ON {t} WHEN OLD.{g} NOT NULL BEGIN DELETE FROM {r} '
        "WHERE id = OLD.fid; END",
        # GDAL's feature counts (gpkg_ogr_contents), kept by its own triggers
        *(
            f"CREATE TRIGGER {_quote(f'trigger_{op}_feature_count_{name}')} AFTER {op.upper()} "
            f"ON {t} BEGIN UPDATE gpkg_ogr_contents SET feature_count = feature_count {sign} 1 "
            f"WHERE lower(table_name) = lower({_literal(name)}); END"
            for op, sign in (("insert", "+"), ("delete", "-"))
        ),
    ]


def _literal(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
