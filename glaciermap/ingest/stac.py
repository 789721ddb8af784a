"""Optional data acquisition through STAC APIs: search, pin the selection, download it into
the data layout the input catalogue reads (off by default: ``download: false``).

Three steps, each reproducible on its own:

1. :func:`search` asks a STAC API (``pystac-client``) for the items of some collections over
   a region's lon/lat box in a date window, with a cloud limit (``eo:cloud_cover`` through the
   API's query or filter extension, and checked again here), and keeps ``max_items`` of them
   in a fixed order: least cloud, then earliest, then id; one item per acquisition.
2. :func:`write_items` pins the selection as an ItemCollection JSON file (sorted keys, equal
   bytes for equal content, written atomically): a rerun downloads the same scenes, and a
   changed selection changes the file (which is what reruns the download in the workflow).
3. :func:`download` fetches each item's assets resumably (HTTP ``Range`` on a hidden
   ``.NAME.part`` file), verifies ``file:size`` and the ``file:checksum`` multihash when the
   item carries them, retries connection errors and 5xx answers with back-off, and renames a
   file to its final name only when it is complete and verified. Files are named as the
   pipeline recognises products:

   - Sentinel-2: ``{item}/T43SDV_20210818T055632_B02_10m.tif`` ... ``_SCL_20m.tif`` (the
     SCL cloud mask works) and an ``MTD_MSIL2A.xml`` beside them holding the items'
     ``raster:bands`` scale/offset as the quantification value and add-offset the optical
     reader takes from product metadata;
   - Landsat Collection 2 Level-2: the USGS names of the asset files
     (``LC09_L2SP_..._SR_B2.TIF``, ``..._QA_PIXEL.TIF``), when the items' scale/offset are
     the Level-2 ones the reader applies;
   - other optical items (or the above when their radiometry is not the reader's):
     ``{item}/{item}_{blue,green,...}.tif`` and a ``{item}.bands.yaml`` sidecar with the
     scale, offset and nodata of ``raster:bands`` (no cloud mask then);
   - Sentinel-1 RTC: ``{item}_VV.tif`` / ``_VH.tif`` (linear power, as ASF HyP3 ships it);
   - Copernicus DEM: ``Copernicus_DSM_COG_10_N36_00_E074_00_DEM.tif``.

Optical items are assembled in a hidden ``.{item}.incomplete/`` folder that is renamed when
all of its files are there, so the catalogue never sees half a scene. HTTP(S) assets are
fetched, public ones as they are, those of a source with ``sign:`` (Microsoft Planetary
Computer's Landsat and Sentinel-1 RTC) with an anonymous SAS token per collection
(:class:`SasSigner`); assets that need credentials are refused with a line saying so.

Command line: ``python -m glaciermap.ingest.stac search ...`` and ``... download ...``
(:func:`main_acquire`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import http.client
import json
import logging
import math
import os
import re
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac

from glaciermap.core.errors import (
    ConfigError,
    GlacierMapError,
    InputDataError,
    MissingInputError,
    OutputError,
)
from glaciermap.core.io import PathLike, atomic_path, write_json

log = logging.getLogger("glaciermap.ingest.stac")  # also when run with -m

KINDS = ("optical", "sar", "dem")
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
PLANETARY_COMPUTER_SAS = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
SAS_MARGIN_S = 300  # a token closer than this to its expiry is fetched again
# Named sources (``acquisition: sources:`` in the config adds to or overrides these).
DEFAULT_SOURCES: dict[str, dict[str, Any]] = {
    "sentinel-2": {
        "api": EARTH_SEARCH,
        "collections": ["sentinel-2-l2a"],
        "max_cloud": 20,
        "max_items": 3,
    },
    "landsat": {  # public search; assets signed with an anonymous SAS token
        "api": PLANETARY_COMPUTER,
        "collections": ["landsat-c2-l2"],
        "max_cloud": 20,
        "max_items": 3,
        "sign": PLANETARY_COMPUTER_SAS,
    },
    "sentinel-1": {  # idem
        "api": PLANETARY_COMPUTER,
        "collections": ["sentinel-1-rtc"],
        "max_items": 8,
        "sign": PLANETARY_COMPUTER_SAS,
    },
    "copernicus-dem": {"api": EARTH_SEARCH, "collections": ["cop-dem-glo-30"]},
}
DEFAULT_KIND_SOURCE = {"optical": "sentinel-2", "sar": "sentinel-1", "dem": "copernicus-dem"}
DEFAULT_WINDOW = ("07-01", "09-30")  # month-day of each year's window: late summer
DEFAULT_LIMIT = 100  # items per page of a search
MAX_RESULTS = 2000  # items read from a search at most (then sorted and cut to max_items)
CHUNK = 1 << 20
USER_AGENT = "glaciermap-stac/1"


class AcquisitionError(GlacierMapError, ConnectionError):
    """A STAC API or an asset host cannot be reached, or refuses the request."""


_REASON_RE = re.compile(
    r"\[Errno -?\d+\] [^'\")\]]+|Name or service not known|Temporary failure in name "
    r"resolution|timed out|Connection refused|Connection reset by peer|\b[45]\d\d\b [A-Za-z ]+"
)


def _detail(exc: BaseException) -> str:
    """The telling part of a client error (``[Errno 111] Connection refused``), one line."""
    text = " ".join(str(exc).split())
    m = _REASON_RE.search(text)
    return (m.group(0).strip() if m else text[:160]) or type(exc).__name__


# -- configuration -----------------------------------------------------------------------
def _epoch(config: Mapping[str, Any], region: str, year: int) -> Mapping[str, Any]:
    regions = config.get("regions") or {}
    if region not in regions:
        raise ConfigError(f"region {region!r} is not in the config; add it under 'regions:'")
    epochs = regions[region].get("acquisition") or {}
    found = epochs.get(year, epochs.get(str(year)))
    return found or {}


def acquisition_request(
    config: Mapping[str, Any], region: str, year: int, kind: str
) -> dict[str, Any] | None:
    """The search and download settings of one region/year/kind from the config, or None if
    that kind is switched off for the year (``regions: R: acquisition: YEAR: sar: null``).

    Keys: ``source``, ``api``, ``collections``, ``datetime`` (``start/end``; None for the DEM,
    which has one epoch), ``max_cloud`` (optical only), ``max_items``, ``assets``,
    ``sign`` (a SAS token API, or None), ``retries``, ``timeout_s``. The source is the
    year's ``optical:``/``sar:`` entry, else
    ``acquisition: optical|sar|dem``, else :data:`DEFAULT_KIND_SOURCE`; a source is one of
    ``acquisition: sources:`` merged over :data:`DEFAULT_SOURCES`. The window is the year's
    ``start``/``end``, else ``acquisition: window: [MM-DD, MM-DD]`` of that year; the
    year's ``max_cloud`` and ``max_items`` override the source's for optical scenes."""
    if kind not in KINDS:
        raise ConfigError(f"acquisition kind {kind!r} unknown; use one of {list(KINDS)}")
    if region in ((config.get("demo") or {}).get("worlds") or {}):
        raise ConfigError(
            f"{region}: a demo region is generated, not downloaded; remove it from demo: "
            "worlds: to acquire real data for it"
        )
    acq = config.get("acquisition") or {}
    epoch = _epoch(config, region, year)
    name = epoch[kind] if kind in epoch else acq.get(kind, DEFAULT_KIND_SOURCE[kind])
    if name is None:
        return None
    user_sources = acq.get("sources") or {}
    if name not in user_sources and name not in DEFAULT_SOURCES:
        raise ConfigError(
            f"regions: {region}: acquisition: {year}: {kind}: source {name!r} unknown; define "
            f"it under acquisition: sources: (known: {sorted({*DEFAULT_SOURCES, *user_sources})})"
        )
    src = {**DEFAULT_SOURCES.get(name, {}), **(user_sources.get(name) or {})}
    if not src.get("api") or not src.get("collections"):
        raise ConfigError(
            f"acquisition: sources: {name}: needs 'api' (a STAC API URL) and 'collections'"
        )
    window = None
    if kind != "dem":
        start_md, end_md = acq.get("window") or DEFAULT_WINDOW
        start = str(epoch.get("start") or f"{year}-{start_md}")
        end = str(epoch.get("end") or f"{year}-{end_md}")
        window = f"{start}/{end}"
    max_cloud = epoch.get("max_cloud", src.get("max_cloud")) if kind == "optical" else None
    return {
        "source": name,
        "api": str(src["api"]),
        "collections": [str(c) for c in src["collections"]],
        "datetime": window,
        "max_cloud": None if max_cloud is None else float(max_cloud),
        "max_items": epoch.get("max_items", src.get("max_items"))
        if kind == "optical"
        else src.get("max_items"),
        "assets": src.get("assets"),
        "sign": src.get("sign"),
        "retries": int(acq.get("retries", 3)),
        "timeout_s": float(acq.get("timeout_s", 60)),
    }


def _required(config: Mapping[str, Any], region: str, year: int, kind: str) -> dict[str, Any]:
    req = acquisition_request(config, region, year, kind)
    if req is None:
        raise ConfigError(
            f"regions: {region}: acquisition: {year}: {kind}: null switches this acquisition "
            "off; remove the null (or do not ask for its files)"
        )
    return req


def search_cli_args(config: Mapping[str, Any], region: str, year: int | str, kind: str) -> str:
    """The arguments of ``python -m glaciermap.ingest.stac search`` for a region/year/kind
    (without ``--out``), shell-quoted: a rule's param, so a changed setting reruns it."""
    req = _required(config, region, int(year), kind)
    bbox = region_bbox_lonlat(config, region)
    args = [
        "--api",
        req["api"],
        "--collections",
        ",".join(req["collections"]),
        "--bbox",
        ",".join(f"{v:.5f}" for v in bbox),
        "--label",
        f"{region}_{year} {kind}",
        "--timeout",
        f"{req['timeout_s']:g}",
    ]
    if req["datetime"]:
        args += ["--datetime", req["datetime"]]
    if req["max_cloud"] is not None:
        args += ["--max-cloud", f"{req['max_cloud']:g}"]
    if req["max_items"] is not None:
        args += ["--max-items", str(int(req["max_items"]))]
    return shlex.join(args)


def acquisition_dest(data_dir: str, region: str, year: int | str, kind: str) -> str:
    """The data folder a region/year/kind is downloaded into: ``{data_dir}/dem`` for DEM
    tiles (shared by the regions), else ``{data_dir}/{region}/{year}/{kind}``."""
    if kind == "dem":
        return f"{data_dir}/dem"
    return f"{data_dir}/{region}/{year}/{kind}"


def download_cli_args(
    config: Mapping[str, Any], region: str, year: int | str, kind: str, data_dir: str
) -> str:
    """The arguments of ``python -m glaciermap.ingest.stac download`` for a region/year/kind
    besides the items file and ``--manifest``, shell-quoted."""
    req = _required(config, region, int(year), kind)
    args = [
        "--dest",
        acquisition_dest(data_dir, region, year, kind),
        "--kind",
        kind,
        "--retries",
        str(req["retries"]),
        "--timeout",
        f"{req['timeout_s']:g}",
    ]
    if req["assets"]:
        args += ["--assets", ",".join(req["assets"])]
    if req["sign"]:
        args += ["--sign", str(req["sign"])]
    return shlex.join(args)


def acquisition_targets(config: Mapping[str, Any]) -> list[str]:
    """The download manifests ``results/stac/{region}_{year}/{kind}.files.json`` of every
    real (non-demo) region/year and kind not switched off: a target fetching everything."""
    demo = (config.get("demo") or {}).get("worlds") or {}
    out = []
    for region, r in sorted((config.get("regions") or {}).items()):
        if region in demo:
            continue
        for year in r.get("years") or []:
            for kind in KINDS:
                if acquisition_request(config, region, int(year), kind) is not None:
                    out.append(f"results/stac/{region}_{year}/{kind}.files.json")
    return out


def region_bbox_lonlat(
    config: Mapping[str, Any], region: str, margin_deg: float = 0.01
) -> tuple[float, float, float, float]:
    """(west, south, east, north) in degrees covering the region's grid bounds (edges
    densified), widened by ``margin_deg``."""
    from pyproj import Transformer

    r = (config.get("regions") or {}).get(region)
    if r is None:
        raise ConfigError(f"region {region!r} is not in the config; add it under 'regions:'")
    to_geo = Transformer.from_crs(r["crs"], "EPSG:4326", always_xy=True)
    left, bottom, right, top = (float(v) for v in r["bounds"])
    w, s, e, n = to_geo.transform_bounds(left, bottom, right, top, densify_pts=21)
    return (
        round(w - margin_deg, 5),
        round(s - margin_deg, 5),
        round(e + margin_deg, 5),
        round(n + margin_deg, 5),
    )


# -- search ------------------------------------------------------------------------------
def _datetime_text(window: str | Sequence[str] | None) -> str | None:
    if window is None or isinstance(window, str):
        return window
    return "/".join(str(w) for w in window)


def _item_time(item: Mapping[str, Any]) -> str:
    p = item.get("properties") or {}
    return str(p.get("datetime") or p.get("start_datetime") or "")


def _cloud(item: Mapping[str, Any]) -> float | None:
    value = (item.get("properties") or {}).get("eo:cloud_cover")
    return None if value is None else float(value)


def _order_key(item: Mapping[str, Any]) -> tuple[bool, float, str, str, str]:
    """Least cloud first (items without a cloud cover after those with one), then the
    earliest, then by collection and id: an order that does not depend on the server's."""
    cloud = _cloud(item)
    return (
        cloud is None,
        cloud or 0.0,
        _item_time(item),
        str(item.get("collection", "")),
        str(item.get("id", "")),
    )


def _acquisition_key(item: Mapping[str, Any]) -> tuple[str, ...]:
    """Items of one acquisition (Earth Search lists reprocessed Sentinel-2 scenes twice,
    ``..._0_L2A`` and ``..._1_L2A``) share this key; others are told apart by id."""
    tile = _s2_tile(item)
    if tile is not None:
        return ("s2", tile, _item_time(item)[:19])
    return (str(item.get("collection", "")), str(item.get("id", "")))


def _bbox_overlaps(item: Mapping[str, Any], bbox: Sequence[float]) -> bool:
    b = item.get("bbox")
    if not b or len(b) < 4:
        return True
    w, s, e, n = (b[0], b[1], b[3], b[4]) if len(b) == 6 else b[:4]
    return bool(w <= bbox[2] and e >= bbox[0] and s <= bbox[3] and n >= bbox[1])


def _describe(
    api_url: str,
    collections: Sequence[str],
    bbox: Sequence[float],
    window: str | None,
    max_cloud: float | None,
) -> str:
    where = f"{list(collections)} at {api_url} over lon/lat {[round(v, 3) for v in bbox]}"
    when = f" in {window}" if window else ""
    cloud = f" with eo:cloud_cover <= {max_cloud:g} %" if max_cloud is not None else ""
    return where + when + cloud


def search(
    api_url: str,
    collections: Sequence[str],
    bbox_lonlat: Sequence[float],
    datetime_window: str | Sequence[str] | None,
    max_cloud: float | None = None,
    limit: int = DEFAULT_LIMIT,
    max_items: int | None = None,
    *,
    max_results: int = MAX_RESULTS,
    timeout: float = 60.0,
    label: str = "",
) -> pystac.ItemCollection:
    """Items of ``collections`` over ``bbox_lonlat`` (west, south, east, north) in
    ``datetime_window`` (``"2021-08-01/2021-09-30"`` or a (start, end) pair; None: any time)
    with at most ``max_cloud`` percent cloud, sorted by cloud cover, time, collection and id,
    one per acquisition, the first ``max_items`` (None: all). ``limit`` is the page size.

    Raises :class:`AcquisitionError` when the API cannot be reached or answers with an error
    and :class:`MissingInputError` when nothing matches (``label``, e.g. ``hunza_2021
    optical``, names the request in that message)."""
    from pystac_client import Client
    from pystac_client.conformance import ConformanceClasses
    from pystac_client.exceptions import APIError

    window = _datetime_text(datetime_window)
    bbox = [float(v) for v in bbox_lonlat]
    what = f"{label}: " if label else ""
    try:
        with warnings.catch_warnings():  # e.g. NoConformsTo: checked below
            warnings.simplefilter("ignore")
            client = Client.open(api_url, timeout=timeout)
    except (APIError, pystac.STACError, OSError, ValueError, KeyError) as exc:
        raise AcquisitionError(
            f"{what}STAC API {api_url} is not reachable or not a STAC catalog ({_detail(exc)}); "
            "check the address (acquisition: sources: ... api:) and the network, or set "
            "download: false and put the files in place by hand (README 'Real data')"
        ) from exc
    kwargs: dict[str, Any] = {
        "collections": list(collections),
        "bbox": bbox,
        "datetime": window,
        "limit": limit,
        "max_items": max_results,
    }
    if max_cloud is not None:
        if client.conforms_to(ConformanceClasses.QUERY):
            kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
        elif client.conforms_to(ConformanceClasses.FILTER):
            kwargs["filter"] = {
                "op": "<=",
                "args": [{"property": "eo:cloud_cover"}, max_cloud],
            }
            kwargs["filter_lang"] = "cql2-json"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = list(client.search(**kwargs).items_as_dicts())
    except (APIError, NotImplementedError, OSError, ValueError) as exc:
        raise AcquisitionError(
            f"{what}STAC search at {api_url} failed ({_detail(exc)}); check the API address and "
            f"the collections {list(collections)} (acquisition: sources:)"
        ) from exc
    if len(found) >= max_results:
        log.warning(
            "%sthe search matched %d items or more; only the first %d the server returned "
            "were ranked: narrow the date window or the cloud limit for a selection that "
            "does not depend on the server's order",
            what,
            max_results,
            max_results,
        )
    keep = [
        it
        for it in found
        if _bbox_overlaps(it, bbox)
        and (max_cloud is None or _cloud(it) is None or (_cloud(it) or 0.0) <= max_cloud)
    ]
    chosen: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for it in sorted(keep, key=_order_key):
        key = _acquisition_key(it)
        if key not in seen:
            seen.add(key)
            chosen.append(it)
    if max_items is not None:
        chosen = chosen[: int(max_items)]
    if not chosen:
        hint = ", raise max_cloud" if max_cloud is not None else ""
        raise MissingInputError(
            f"{what}no STAC item found for "
            f"{_describe(api_url, collections, bbox, window, max_cloud)}"
            f" ({len(found)} returned before filtering); widen the date window (regions: "
            f"REGION: acquisition: YEAR: start/end){hint} or choose another source "
            "(acquisition: sources:)"
        )
    log.info(
        "%s%d of %d item(s) chosen: %s",
        what,
        len(chosen),
        len(keep),
        ", ".join(f"{it.get('id')} (cloud {_cloud(it)})" for it in chosen),
    )
    return pystac.ItemCollection.from_dict(
        {"type": "FeatureCollection", "features": chosen}, preserve_dict=True
    )


def items_json(items: pystac.ItemCollection) -> str:
    """The pinned text of an ItemCollection: sorted keys, two-space indent, one final
    newline; equal content gives equal bytes."""
    data = items.to_dict(transform_hrefs=False)
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_items(items: pystac.ItemCollection, dest: PathLike) -> Path:
    """Write ``items`` as a pinned ItemCollection JSON file, atomically; returns ``dest``."""
    dest = Path(dest)
    text = items_json(items)
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    log.info("pinned %d item(s) in %s", len(items.items), dest)
    return dest


def read_items(path: PathLike) -> list[dict[str, Any]]:
    """The item dicts of a pinned ItemCollection JSON file."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"{path}: not found; run the STAC search that writes it first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputDataError(
            f"{path}: not valid JSON ({exc}); delete it and rerun the search"
        ) from exc
    feats = data.get("features") if isinstance(data, dict) else None
    if not isinstance(feats, list) or not all(isinstance(f, dict) and "id" in f for f in feats):
        raise InputDataError(
            f"{path}: not a STAC ItemCollection (no 'features' with ids); delete it and rerun "
            "the search"
        )
    return feats


# -- checksums ---------------------------------------------------------------------------
# multihash codes (https://github.com/multiformats/multicodec) -> hashlib name, digest bytes
_MULTIHASH = {
    0x11: ("sha1", 20),
    0x12: ("sha256", 32),
    0x13: ("sha512", 64),
    0x14: ("sha3_512", 64),
    0x16: ("sha3_256", 32),
    0xD5: ("md5", 16),
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def parse_multihash(text: str) -> tuple[str, str] | None:
    """(hashlib algorithm, hex digest) of a ``file:checksum`` multihash (hex), e.g.
    ``1220<sha-256 hex>``; None for an algorithm this module does not know."""
    try:
        raw = bytes.fromhex(text.strip())
        code, pos = _varint(raw, 0)
        length, pos = _varint(raw, pos)
    except ValueError as exc:
        raise InputDataError(f"file:checksum {text!r} is not a hex multihash ({exc})") from exc
    if code not in _MULTIHASH:
        return None
    algo, size = _MULTIHASH[code]
    digest = raw[pos:]
    if length != size or len(digest) != size:
        raise InputDataError(
            f"file:checksum {text!r}: a {algo} multihash must hold {size} bytes, not {len(digest)}"
        )
    return algo, digest.hex()


def multihash(path: PathLike, algo: str = "sha256") -> str:
    """The multihash hex (as in ``file:checksum``) of a file's content."""
    code = next(c for c, (name, _) in _MULTIHASH.items() if name == algo)
    digest = _hash_file(Path(path), algo)
    prefix = bytes([code]) if code < 0x80 else bytes([code & 0x7F | 0x80, code >> 7])
    return (prefix + bytes([len(digest) // 2])).hex() + digest


def _hash_file(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# -- layout: asset keys -> the pipeline's file names --------------------------------------
@dataclass(frozen=True)
class AssetFile:
    """One asset to download: where from (main href, then HTTP(S) alternates), its file name
    in the item's folder, and what to verify."""

    key: str
    hrefs: tuple[str, ...]
    name: str
    checksum: str | None = None
    size: int | None = None


@dataclass
class ItemLayout:
    """Where one item's files go: ``folder`` under the destination ("" = the destination
    itself), the assets, and small text files written beside them (metadata, sidecars)."""

    item_id: str
    folder: str
    files: list[AssetFile]
    extras: dict[str, str] = field(default_factory=dict)


_S2_ASSETS = {  # band file key -> asset keys (Earth Search v1, Planetary Computer / v0)
    "B02": ("blue", "B02"),
    "B03": ("green", "B03"),
    "B04": ("red", "B04"),
    "B08": ("nir", "B08"),
    "B11": ("swir16", "B11"),
    "B12": ("swir22", "B12"),
}
_S2_RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B11": 20, "B12": 20, "SCL": 20}
_LANDSAT_ASSETS = {  # common name -> asset keys (Planetary Computer, Earth Search v1)
    "blue": ("blue",),
    "green": ("green",),
    "red": ("red",),
    "nir": ("nir08", "nir"),
    "swir1": ("swir16",),
    "swir2": ("swir22",),
}
_GENERIC_ASSETS = {  # common name -> asset keys of any optical item
    "blue": ("blue", "B02"),
    "green": ("green", "B03"),
    "red": ("red", "B04"),
    "nir": ("nir", "nir08", "B08"),
    "swir1": ("swir16", "swir1", "B11"),
    "swir2": ("swir22", "swir2", "B12"),
}
_SAR_POLS = ("VV", "VH", "HH", "HV")
_S2_TILE_RE = re.compile(r"(?:^|_)T?(\d{2}[C-X][A-Z]{2})(?:_|$)")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "item"


def _s2_tile(item: Mapping[str, Any]) -> str | None:
    p = item.get("properties") or {}
    plat = str(p.get("platform", "")).lower()
    coll = str(item.get("collection", "")).lower()
    if "sentinel-2" not in plat and "sentinel-2" not in coll:
        return None
    if p.get("s2:mgrs_tile"):
        return str(p["s2:mgrs_tile"]).upper().removeprefix("T")
    if p.get("mgrs:utm_zone") is not None and p.get("mgrs:latitude_band"):
        zone = int(p["mgrs:utm_zone"])
        return f"{zone:02d}{p['mgrs:latitude_band']}{p.get('mgrs:grid_square', '')}".upper()
    m = _S2_TILE_RE.search(str(item.get("id", "")))
    return m.group(1) if m else None


def _item_datetime(item: Mapping[str, Any]) -> dt.datetime:
    text = _item_time(item)
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputDataError(
            f"STAC item {item.get('id')}: datetime {text!r} is not ISO 8601; the item is malformed"
        ) from exc


def _radiometry(asset: Mapping[str, Any]) -> dict[str, float | None]:
    """scale/offset/nodata of an asset's first band (``raster:bands``, STAC 1.1 ``bands`` or
    asset-level ``raster:scale``/``raster:offset``/``nodata``); keys absent when not given."""
    out: dict[str, float | None] = {}
    bands = asset.get("raster:bands") or asset.get("bands") or []
    first: Mapping[str, Any] = bands[0] if bands and isinstance(bands[0], Mapping) else {}
    for key in ("scale", "offset", "nodata"):
        for where in (first, asset):
            for k in (key, f"raster:{key}"):
                if k in where:
                    v = where[k]
                    out[key] = None if v is None or v == "nan" else float(v)
                    break
            if key in out:
                break
    return out


def _hrefs(asset: Mapping[str, Any]) -> tuple[str, ...]:
    hrefs = [str(asset.get("href", ""))]
    for alt in (asset.get("alternate") or {}).values():
        if isinstance(alt, Mapping) and alt.get("href"):
            hrefs.append(str(alt["href"]))
    web = [h for h in hrefs if urllib.parse.urlparse(h).scheme in ("http", "https")]
    return tuple(web) or tuple(h for h in hrefs if h)


def _asset_file(key: str, asset: Mapping[str, Any], name: str) -> AssetFile:
    size = asset.get("file:size")
    checksum = asset.get("file:checksum")
    return AssetFile(
        key=key,
        hrefs=_hrefs(asset),
        name=name,
        checksum=str(checksum) if checksum else None,
        size=int(size) if size is not None else None,
    )


def _ext(asset: Mapping[str, Any]) -> str:
    """``.jp2`` for a JPEG 2000 asset (e.g. Sentinel-2 L1C), else ``.tif``."""
    path = urllib.parse.urlparse(str(asset.get("href", ""))).path.lower()
    return ".jp2" if path.endswith(".jp2") or "jp2" in str(asset.get("type", "")) else ".tif"


def _pick(assets: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    lower = {k.lower(): k for k in assets}
    for k in keys:
        if k in assets:
            return k
        if k.lower() in lower:
            return lower[k.lower()]
    return None


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _common_radiometry(item_id: str, assets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The one scale/offset/nodata of a scene's bands (the optical reader takes one per
    scene); differing values are an error."""
    values = [_radiometry(a) for a in assets]
    out: dict[str, Any] = {}
    for key in ("scale", "offset", "nodata"):
        given = {v[key] for v in values if key in v}
        if len(given) > 1:
            raise InputDataError(
                f"STAC item {item_id}: its bands have different raster:bands {key} {given}; "
                "the optical reader takes one per scene: download the item by hand and "
                "describe it in a .bands.yaml sidecar"
            )
        if given:
            out[key] = given.pop()
    return out


def _xml_number(value: float) -> str:
    return str(round(value)) if math.isclose(value, round(value)) else repr(value)


def _s2_layout(item: Mapping[str, Any], wanted: Sequence[str] | None) -> ItemLayout | None:
    """Sentinel-2 band files under the names the Sentinel-2 reader expects, and an MTD file
    with the items' radiometry; None when the item does not fit (then the generic sidecar)."""
    from glaciermap.ingest.optical import Sentinel2

    tile = _s2_tile(item)
    if tile is None:
        return None
    item_id = str(item["id"])
    assets: Mapping[str, Any] = item.get("assets") or {}
    p = item.get("properties") or {}
    level = (
        "L1C" if "l1c" in f"{item.get('collection')} {p.get('s2:product_type')}".lower() else "L2A"
    )
    sensing = _item_datetime(item).strftime("%Y%m%dT%H%M%S")
    bands = {b: _pick(assets, keys) for b, keys in _S2_ASSETS.items()}
    if any(v is None for v in bands.values()):
        return None
    scl = _pick(assets, ("scl", "SCL")) if level == "L2A" else None
    keyed: dict[str, str] = {b: k for b, k in bands.items() if k is not None}
    if scl is not None:
        keyed["SCL"] = scl
    files = []
    for band, key in keyed.items():
        if wanted is not None and key not in wanted:
            continue
        a = assets[key]
        bands0 = (a.get("raster:bands") or [{}])[0]
        res = int(a.get("gsd") or bands0.get("spatial_resolution") or _S2_RES[band])
        suffix = f"_{res:02d}m" if level == "L2A" else ""
        name = f"T{tile}_{sensing}_{band}{suffix}{_ext(a)}"
        if not Sentinel2.pattern.match(name):
            return None
        files.append(_asset_file(key, a, name))
    rad = _common_radiometry(item_id, [assets[k] for b, k in keyed.items() if b != "SCL"])
    if rad.get("nodata") not in (None, 0.0):
        return None  # the Sentinel-2 reader takes DN 0 as missing
    scale = rad.get("scale")
    offset = rad.get("offset")
    if scale is None:  # no raster:bands: the processing baseline says whether DN has an offset
        baseline = str(p.get("s2:processing_baseline") or "")
        scale, offset = 1e-4, (-0.1 if baseline and float(baseline) >= 4 else 0.0)
    if p.get("earthsearch:boa_offset_applied") or p.get("sentinel:boa_offset_applied"):
        # Earth Search shifted these DNs back to the pre-04.00 range already
        log.info("%s: BOA offset already applied to the DNs; offset 0", item_id)
        offset = 0.0
    quant = 1.0 / float(scale)
    add = float(offset or 0.0) * quant
    if level == "L2A":
        mtd, qtag, otag = "MTD_MSIL2A.xml", "BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET"
    else:
        mtd, qtag, otag = "MTD_MSIL1C.xml", "QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET"
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!-- glaciermap: radiometry of STAC item {item_id} (raster:bands scale {scale!r}, "
        f"offset {offset!r}); not an ESA product file -->\n"
        f"<Level-{level[1:]}_User_Product>\n  <General_Info>\n"
        "    <Product_Image_Characteristics>\n"
        f'      <{qtag} unit="none">{_xml_number(quant)}</{qtag}>\n'
        f'      <{otag} band_id="0">{_xml_number(add)}</{otag}>\n'
        "    </Product_Image_Characteristics>\n  </General_Info>\n"
        f"</Level-{level[1:]}_User_Product>\n"
    )
    return ItemLayout(item_id, _safe(item_id), files, {mtd: xml})


def _landsat_layout(item: Mapping[str, Any], wanted: Sequence[str] | None) -> ItemLayout | None:
    """Landsat Collection 2 Level-2 files under their USGS names (the reader applies the
    Level-2 scale and offset itself); None when names or radiometry do not fit."""
    from glaciermap.ingest.optical import LANDSAT_L2_OFFSET, LANDSAT_L2_SCALE, Landsat

    p = item.get("properties") or {}
    if "landsat" not in f"{p.get('platform', '')} {item.get('collection', '')}".lower():
        return None
    item_id = str(item["id"])
    assets: Mapping[str, Any] = item.get("assets") or {}
    keys = {c: _pick(assets, k) for c, k in _LANDSAT_ASSETS.items()}
    qa = _pick(assets, ("qa_pixel", "QA_PIXEL"))
    if any(v is None for v in keys.values()):
        return None
    chosen = [k for k in keys.values() if k is not None] + ([qa] if qa else [])
    files = []
    for key in chosen:
        path = urllib.parse.urlparse(_hrefs(assets[key])[0]).path
        name = os.path.basename(path)
        if not Landsat.pattern.match(name):
            return None
        if wanted is None or key in wanted:
            files.append(_asset_file(key, assets[key], name))
    rad = _common_radiometry(item_id, [assets[k] for k in keys.values() if k is not None])
    if ("scale" in rad and not _close(rad["scale"], LANDSAT_L2_SCALE)) or (
        "offset" in rad and not _close(rad["offset"], LANDSAT_L2_OFFSET)
    ):
        return None
    if rad.get("nodata") not in (None, 0.0):
        return None
    return ItemLayout(item_id, _safe(item_id), files)


def _common_name(asset: Mapping[str, Any]) -> str | None:
    alias = {"nir08": "nir", "swir16": "swir1", "swir22": "swir2"}
    for band in asset.get("eo:bands") or asset.get("bands") or []:
        if isinstance(band, Mapping):
            name = band.get("common_name") or band.get("eo:common_name")
            if name:
                return alias.get(str(name), str(name))
    return None


def _generic_layout(item: Mapping[str, Any], wanted: Sequence[str] | None) -> ItemLayout:
    """Separate band files ``{item}_{common}.tif`` and a ``{item}.bands.yaml`` sidecar with
    the scale, offset and nodata of ``raster:bands`` (see :func:`read_generic_scene`)."""
    import yaml

    from glaciermap.ingest.optical import COMMON_NAMES

    item_id = str(item["id"])
    base = _safe(item_id)
    assets: Mapping[str, Any] = item.get("assets") or {}
    by_name: dict[str, str] = {}
    for common, keys in _GENERIC_ASSETS.items():
        k = _pick(assets, keys)
        if k is not None:
            by_name[common] = k
    for key, a in sorted(assets.items()):
        named = _common_name(a)
        if named in COMMON_NAMES and named not in by_name:
            by_name[named] = key
    if wanted is not None:
        by_name = {c: k for c, k in by_name.items() if k in wanted}
    missing = [c for c in ("blue", "green", "red", "nir") if c not in by_name]
    if missing:
        raise InputDataError(
            f"STAC item {item_id}: no asset for bands {missing} (assets: {sorted(assets)}); "
            "a composite needs at least blue, green, red and nir: choose another collection "
            "or list the asset keys in acquisition: sources: NAME: assets:"
        )
    order = [c for c in COMMON_NAMES if c in by_name]
    names = {c: f"{base}_{c}{_ext(assets[by_name[c]])}" for c in order}
    files = [_asset_file(by_name[c], assets[by_name[c]], names[c]) for c in order]
    rad = _common_radiometry(item_id, [assets[by_name[c]] for c in order])
    if "scale" not in rad:
        log.warning(
            "STAC item %s has no raster:bands scale; the sidecar leaves the reader's default "
            "(reflectance = DN * 1e-4)",
            item_id,
        )
    p = item.get("properties") or {}
    spec: dict[str, Any] = {
        "sensor": str(p.get("platform") or item.get("collection") or "stac"),
        "date": _item_datetime(item).date().isoformat(),
        "bands": names,
        **{k: rad[k] for k in ("scale", "offset", "nodata") if k in rad},
    }
    text = f"# glaciermap: written from STAC item {item_id} (raster:bands radiometry)\n"
    text += yaml.safe_dump(spec, sort_keys=True, default_flow_style=False)
    return ItemLayout(item_id, base, files, {f"{base}.bands.yaml": text})


def _sar_layout(item: Mapping[str, Any], wanted: Sequence[str] | None) -> ItemLayout:
    """Backscatter files ``{item}_{VV|VH|HH|HV}.tif``, dated by the item's name or time."""
    from glaciermap.ingest.names import classify_sar_files

    item_id = str(item["id"])
    assets: Mapping[str, Any] = item.get("assets") or {}
    base = _safe(item_id)
    if not re.search(r"(?<!\d)(?:19|20)\d{6}(?!\d)", base):
        base = f"S1_{_item_datetime(item).strftime('%Y%m%dT%H%M%S')}_{base}"
    files = []
    for key, a in sorted(assets.items()):
        pol = key.upper()
        if pol not in _SAR_POLS or (wanted is not None and key not in wanted):
            continue
        name = f"{base}_{pol}.tif"
        classified = classify_sar_files([name])
        if not classified or classified[0].kind != "backscatter":  # e.g. "coh" in an id
            name = f"S1_{_item_datetime(item).strftime('%Y%m%dT%H%M%S')}_{pol}.tif"
        files.append(_asset_file(key, a, name))
    if not files:
        raise InputDataError(
            f"STAC item {item_id}: no backscatter asset ({'/'.join(p.lower() for p in _SAR_POLS)};"
            f" assets: {sorted(assets)}); choose a Sentinel-1 RTC collection (acquisition: "
            "sources:)"
        )
    return ItemLayout(item_id, "", files)


def _dem_layout(item: Mapping[str, Any], wanted: Sequence[str] | None) -> ItemLayout:
    """The DEM asset under its Copernicus tile name (``..._DEM.tif``), else ``{item}.tif``."""
    from glaciermap.ingest.names import copernicus_tile_bounds

    item_id = str(item["id"])
    assets: Mapping[str, Any] = item.get("assets") or {}
    if wanted is not None:
        keys = [k for k in wanted if k in assets]
    else:
        main = _pick(assets, ("data", "elevation", "dem"))
        roles = [k for k, a in sorted(assets.items()) if "data" in (a.get("roles") or [])]
        keys = [main] if main is not None else roles[:1]
    if not keys:
        raise InputDataError(
            f"STAC item {item_id}: no DEM asset ('data'; assets: {sorted(assets)}); choose a "
            "DEM collection such as cop-dem-glo-30 (acquisition: sources:)"
        )
    files = []
    for key in keys:
        href_name = os.path.basename(urllib.parse.urlparse(_hrefs(assets[key])[0]).path)
        for name in (href_name, f"{_safe(item_id)}_DEM.tif", f"{_safe(item_id)}.tif"):
            if copernicus_tile_bounds(name) or name == f"{_safe(item_id)}.tif":
                break
        files.append(_asset_file(key, assets[key], name))
    return ItemLayout(item_id, "", files)


def infer_kind(item: Mapping[str, Any]) -> str:
    """optical, sar or dem, from an item's collection, platform, id and asset keys."""
    p = item.get("properties") or {}
    where = f"{item.get('collection', '')} {p.get('platform', '')}".lower()
    keys = {k.upper() for k in item.get("assets") or {}}
    if "dem" in where or "_dsm_" in str(item.get("id", "")).lower():
        return "dem"
    if "sentinel-1" in where or keys & set(_SAR_POLS):
        return "sar"
    return "optical"


def item_layout(
    item: Mapping[str, Any], kind: str | None = None, assets: Sequence[str] | None = None
) -> ItemLayout:
    """Where the files of one item go and under which names (see the module docstring);
    ``assets`` restricts the asset keys downloaded (None: those the pipeline reads)."""
    kind = kind or infer_kind(item)
    if kind == "sar":
        return _sar_layout(item, assets)
    if kind == "dem":
        return _dem_layout(item, assets)
    if kind != "optical":
        raise ConfigError(f"acquisition kind {kind!r} unknown; use one of {list(KINDS)}")
    return (
        _s2_layout(item, assets) or _landsat_layout(item, assets) or _generic_layout(item, assets)
    )


# -- download ----------------------------------------------------------------------------
class _Retry(Exception):
    """A transfer failure worth another attempt (connection lost, timeout, 5xx)."""


@contextlib.contextmanager
def _locked(final: Path) -> Iterator[None]:
    """An exclusive lock on ``final`` across processes (two region/years may fetch the same
    DEM tile at once) through a hidden lock file beside it, removed once ``final`` is in
    place (a process still waiting then finds the file and only verifies it)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = final.with_name(f".{final.name}.lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
        if final.exists():
            lock.unlink(missing_ok=True)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) of a ``Content-Range`` header."""
    m = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", value or "")
    if not m:
        return None, None
    first = None if m.group(1) == "*" else int(m.group(1))
    total = None if m.group(2) == "*" else int(m.group(2))
    return first, total


def _mb(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _transfer(
    href: str,
    part: Path,
    size: int | None,
    timeout: float,
    name: str,
    sign: Callable[[str], str] | None = None,
) -> None:
    """Append the missing bytes of ``href`` to ``part`` (a ``Range`` request when ``part``
    holds some already; ``sign`` turns the href into the address read). :class:`_Retry` on
    what another attempt may cure."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(sign(href) if sign else href, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        code = exc.code
        exc.close()
        if code == 416 and offset:  # nothing after offset: complete, or the file changed
            _, remote = _content_range(exc.headers.get("Content-Range"))
            if remote == offset:
                return
            part.unlink()
            raise _Retry(f"HTTP 416 for bytes {offset}- (remote size {remote})") from exc
        if code in (408, 425, 429) or code >= 500:
            raise _Retry(f"HTTP {code}") from exc
        if code in (404, 410):
            raise MissingInputError(
                f"{href}: HTTP {code}, the asset is gone; the catalogue changed since the "
                "search: rerun the search (delete the pinned items file) and the download"
            ) from exc
        if code in (401, 403, 409):
            raise AcquisitionError(
                f"{href}: access refused (HTTP {code}); this source's assets need credentials "
                "or signed URLs: give the source a sign: SAS token API (Microsoft Planetary "
                "Computer's anonymous tokens), choose a source with public assets (Earth "
                "Search) or download by hand"
            ) from exc
        raise AcquisitionError(f"{href}: HTTP {code} ({exc.reason}); cannot download") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retry(f"{type(exc).__name__}: {reason}") from exc
    with resp:
        status = resp.status
        total: int | None = None
        if status == 206:
            first, total = _content_range(resp.headers.get("Content-Range"))
            if first != offset:
                part.unlink()
                raise _Retry(f"the server answered bytes {first}- for {offset}-")
        else:
            if offset:
                log.info("%s: the server ignores Range; downloading from the start", name)
            offset = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        expected = size if size is not None else total
        if offset:
            log.info("%s: resuming at %s of %s", name, _mb(offset), _mb(expected or 0))
        else:
            known = _mb(expected) if expected is not None else "? bytes"
            log.info("%s: downloading %s from %s", name, known, href)
        done, shown, t0 = offset, time.monotonic(), time.monotonic()
        with part.open("ab" if offset else "wb") as fh:
            try:
                while chunk := resp.read(CHUNK):
                    fh.write(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if now - shown >= 5.0:
                        pct = f" ({100 * done / expected:.0f} %)" if expected else ""
                        log.info("%s: %s%s", name, _mb(done), pct)
                        shown = now
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise OutputError(
                        f"{part.parent}: the disk is full ({name}: {_mb(done)} written); free "
                        "space and rerun (the download resumes where it stopped)"
                    ) from exc
                raise _Retry(f"connection lost after {done} bytes ({exc})") from exc
        if expected is not None and done < expected:
            raise _Retry(f"connection closed after {done} of {expected} bytes")
        secs = max(time.monotonic() - t0, 1e-3)
        log.info(
            "%s: %s received (%.1f MB/s)", name, _mb(done - offset), (done - offset) / 1e6 / secs
        )


def _verify(path: Path, f: AssetFile) -> str | None:
    """None when ``path`` matches the asset's size and checksum, else what differs."""
    got = path.stat().st_size
    if f.size is not None and got != f.size:
        return f"size {got} bytes, file:size says {f.size}"
    if f.checksum:
        parsed = parse_multihash(f.checksum)
        if parsed is None:
            log.warning("%s: file:checksum %s: unknown multihash; not checked", f.name, f.checksum)
            return None
        algo, want = parsed
        have = _hash_file(path, algo)
        if have != want:
            return f"checksum mismatch: {algo} {have[:16]}..., file:checksum says {want[:16]}..."
    return None


class SasSigner:
    """Signs asset hrefs with an anonymous SAS token per collection, as Microsoft Planetary
    Computer serves them: ``GET {api}/{collection}`` answers ``{"token": ...,
    "msft:expiry": ...}``, and ``href?token`` may be read until the expiry. Tokens are
    cached and fetched again :data:`SAS_MARGIN_S` before they expire; the pinned items keep
    the unsigned hrefs (a token in them would expire and change the pin)."""

    def __init__(self, api: str, timeout: float = 60.0):
        self.api = api.rstrip("/")
        self.timeout = timeout
        self._tokens: dict[str, tuple[str, float]] = {}

    def token(self, collection: str) -> str:
        """The collection's token (cached until :data:`SAS_MARGIN_S` before its expiry)."""
        cached = self._tokens.get(collection)
        if cached and cached[1] - time.time() > SAS_MARGIN_S:
            return cached[0]
        url = f"{self.api}/{urllib.parse.quote(collection)}"
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read().decode("utf-8"))
            token = str(body["token"])
        except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
            raise AcquisitionError(
                f"{url}: no SAS token for collection {collection!r} ({_detail(exc)}); check "
                "the network, or the source's sign: address"
            ) from exc
        expiry = time.time() + 3600.0  # the service's tokens last about an hour
        with contextlib.suppress(ValueError, TypeError, KeyError):
            when = dt.datetime.fromisoformat(str(body["msft:expiry"]).replace("Z", "+00:00"))
            expiry = when.timestamp()
        self._tokens[collection] = (token, expiry)
        return token

    def signer(self, collection: str) -> Callable[[str], str]:
        """A function signing one href of the collection (with a fresh token if needed)."""

        def sign(href: str) -> str:
            return f"{href}{'&' if '?' in href else '?'}{self.token(collection)}"

        return sign


def fetch(
    f: AssetFile,
    final: Path,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    backoff_s: float = 1.0,
    sign: Callable[[str], str] | None = None,
) -> Path:
    """Download one asset to ``final``: resumably through a hidden ``.NAME.part`` file,
    verified (size, checksum), renamed when complete. A file already at ``final`` that
    verifies is kept. ``retries`` further attempts follow a failure, after ``backoff_s``,
    then twice as long each time (at most 30 s). ``sign``: turns the href into the address
    read, at every attempt (:meth:`SasSigner.signer`); messages name the unsigned href."""
    part = final.with_name(f".{final.name}.part")
    with _locked(final):
        if final.exists():
            problem = _verify(final, f)
            if problem is None:
                log.info("%s: present and verified", final.name)
                return final
            log.warning("%s: %s; downloading it again", final, problem)
            final.unlink()
        if not f.hrefs:
            raise InputDataError(f"STAC asset {f.key} ({final.name}) has no href")
        href = f.hrefs[0]
        if urllib.parse.urlparse(href).scheme not in ("http", "https"):
            raise AcquisitionError(
                f"{href}: not an HTTP(S) address (asset {f.key}); glaciermap downloads only "
                "public HTTP(S) assets: choose a source serving them (e.g. Earth Search) or "
                "download by hand"
            )
        last, mismatches = "", 0
        attempts = max(0, retries) + 1
        for attempt in range(attempts):
            if attempt:
                pause = min(backoff_s * 2 ** (attempt - 1), 30.0)
                log.warning(
                    "%s: %s; attempt %d of %d in %.1f s",
                    final.name,
                    last,
                    attempt + 1,
                    attempts,
                    pause,
                )
                time.sleep(pause)
            try:
                _transfer(href, part, f.size, timeout, final.name, sign)
            except _Retry as exc:
                last = str(exc)
                continue
            problem = _verify(part, f)
            if problem is not None:
                mismatches += "checksum" in problem
                last = problem
                part.unlink(missing_ok=True)  # complete but wrong: start again from byte 0
                continue
            os.replace(part, final)
            return final
        if mismatches:
            raise InputDataError(
                f"{final}: {last}, in {attempts} attempts from {href}; nothing was kept "
                "under that name: the asset is corrupt or changed since the search, rerun the "
                "search (delete the pinned items file) or report it to the provider"
            )
        raise AcquisitionError(
            f"{final}: download from {href} failed after {attempts} attempts ({last}); check "
            f"the network and rerun (the partial file {part.name} is kept and resumed)"
        )


def download(
    items_json: PathLike,
    dest_dir: PathLike,
    assets: Sequence[str] | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    *,
    kind: str | None = None,
    backoff_s: float = 1.0,
    manifest: PathLike | None = None,
    sign: str | None = None,
) -> list[Path]:
    """Download the assets of every item in the pinned ``items_json`` into ``dest_dir``
    under the pipeline's names (see :func:`item_layout`; ``kind`` optical/sar/dem, None:
    inferred per item; ``assets`` restricts the asset keys). Optical items are assembled in
    a hidden folder renamed when complete. Returns the files (sorted); ``manifest``, if
    given, gets them as JSON (paths, sizes, item ids). ``sign``: a SAS token API
    (:class:`SasSigner`) whose token each item's collection's hrefs need."""
    dest = Path(dest_dir)
    items = read_items(items_json)
    layouts = [item_layout(it, kind, assets) for it in items]
    signer = SasSigner(sign, timeout) if sign else None
    out: list[Path] = []
    for n, (item, lay) in enumerate(zip(items, layouts, strict=True), 1):
        log.info("item %d of %d: %s (%d file(s))", n, len(layouts), lay.item_id, len(lay.files))
        opts: dict[str, Any] = {"retries": retries, "timeout": timeout, "backoff_s": backoff_s}
        if signer is not None:
            opts["sign"] = signer.signer(str(item.get("collection", "")))
        if not lay.folder:
            out += [fetch(f, dest / f.name, **opts) for f in lay.files]
            continue
        final_dir = dest / lay.folder
        work = final_dir if final_dir.is_dir() else dest / f".{lay.folder}.incomplete"
        for f in lay.files:
            fetch(f, work / f.name, **opts)
        for name, text in sorted(lay.extras.items()):
            target = work / name
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                with atomic_path(target) as tmp:
                    tmp.write_text(text, encoding="utf-8")
        if work != final_dir:
            os.replace(work, final_dir)
        out += [final_dir / f.name for f in lay.files] + [final_dir / n for n in lay.extras]
    out = sorted(set(out))
    if manifest is not None:
        write_json(
            {
                "items": [lay.item_id for lay in layouts],
                "files": [{"path": str(p), "bytes": p.stat().st_size} for p in out],
            },
            manifest,
        )
    log.info("%d file(s) of %d item(s) in %s", len(out), len(layouts), dest)
    return out


# -- command line ------------------------------------------------------------------------
def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers expected") from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m glaciermap.ingest.stac",
        description="Search a STAC API and pin the selection; download pinned items into the "
        "data layout.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search", help="search and write a pinned ItemCollection JSON")
    s.add_argument("--api", required=True, help="STAC API URL")
    s.add_argument("--collections", required=True, help="comma-separated collection ids")
    s.add_argument("--bbox", required=True, type=_floats, help="west,south,east,north (deg)")
    s.add_argument("--datetime", default=None, help="START/END (ISO dates); none: any time")
    s.add_argument("--max-cloud", type=float, default=None, help="eo:cloud_cover limit (%%)")
    s.add_argument("--max-items", type=int, default=None, help="items kept (default: all)")
    s.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="page size")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    s.add_argument("--label", default="", help="names the request in messages")
    s.add_argument("--out", required=True, help="pinned ItemCollection JSON to write")
    d = sub.add_parser("download", help="download the assets of a pinned ItemCollection")
    d.add_argument("items", help="pinned ItemCollection JSON (from search)")
    d.add_argument("--dest", required=True, help="destination folder")
    d.add_argument("--kind", choices=KINDS, default=None, help="default: inferred per item")
    d.add_argument(
        "--assets",
        default=None,
        help="comma-separated asset keys (default: all the pipeline reads)",
    )
    d.add_argument("--retries", type=int, default=3)
    d.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    d.add_argument("--backoff", type=float, default=1.0, help="first pause between attempts (s)")
    d.add_argument("--manifest", default=None, help="JSON file listing what was downloaded")
    d.add_argument("--sign", default=None, help="SAS token API that signs the asset hrefs")
    return p


def main_acquire(argv: Sequence[str] | None = None) -> int:
    """Command line ``search`` / ``download`` (see ``--help``); returns the exit status: 0,
    or 1 after a :class:`GlacierMapError`, whose one-line message goes to stderr."""
    from glaciermap.core.logs import configure

    args = _parser().parse_args(argv)
    configure()
    try:
        if args.command == "search":
            items = search(
                args.api,
                [c for c in args.collections.split(",") if c],
                args.bbox,
                args.datetime,
                max_cloud=args.max_cloud,
                limit=args.limit,
                max_items=args.max_items,
                timeout=args.timeout,
                label=args.label,
            )
            write_items(items, args.out)
        else:
            download(
                args.items,
                args.dest,
                assets=args.assets.split(",") if args.assets else None,
                retries=args.retries,
                timeout=args.timeout,
                kind=args.kind,
                backoff_s=args.backoff,
                manifest=args.manifest,
                sign=args.sign,
            )
    except GlacierMapError as exc:
        print(f"glaciermap: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main_acquire())
