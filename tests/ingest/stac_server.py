"""A tiny static STAC API on 127.0.0.1 for the acquisition tests (no test reaches the internet).

Serves a landing page, ``/conformance``, ``/collections``, ``/collections/{id}``, ``/search``
(GET and POST: collections, ids, bbox, datetime, ``query`` on properties, CQL2-JSON ``filter``
comparisons, ``limit`` with ``next`` links) over a static item list, and asset bytes under
``/assets/{name}`` with HTTP Range. Faults can be injected per asset: drop the connection
after N bytes (once), serve corrupt bytes, answer 5xx a number of times. Every request is
recorded (method, path, Range header).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/item-search#filter",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
]


def sha256_multihash(data: bytes) -> str:
    """``file:checksum`` of ``data`` (sha2-256 multihash, hex)."""
    return "1220" + hashlib.sha256(data).hexdigest()


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _in_window(item: dict[str, Any], window: str | None) -> bool:
    if not window:
        return True
    start, _, end = window.partition("/") if "/" in window else (window, "", window)
    t = _time(item["properties"]["datetime"])
    if start not in ("", "..") and t < _time(start):
        return False
    return not (end not in ("", "..") and t > _time(end))


def _compare(value: Any, op: str, ref: Any) -> bool:
    if value is None:
        return False
    ops = {
        "lt": value < ref,
        "lte": value <= ref,
        "gt": value > ref,
        "gte": value >= ref,
        "eq": value == ref,
        "neq": value != ref,
    }
    return ops[op]


_CQL = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=": "eq", "<>": "neq"}


def _cql(item: dict[str, Any], expr: dict[str, Any]) -> bool:
    op = expr["op"]
    if op == "and":
        return all(_cql(item, a) for a in expr["args"])
    if op == "or":
        return any(_cql(item, a) for a in expr["args"])
    prop, ref = expr["args"]
    return _compare(item["properties"].get(prop["property"]), _CQL[op], ref)


class StacServer:
    """The server: ``url`` of the API root; ``items`` and ``assets`` to fill; faults."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.assets: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}  # asset name -> bytes sent before a drop (once)
        self.corrupt: set[str] = set()  # asset names served with flipped bytes
        self.fail_5xx: dict[str, int] = {}  # asset name -> 503 answers before a good one
        # SAS signing as Planetary Computer's: GET /sas/{collection} -> {"token", "msft:expiry"};
        # an asset in ``signed`` (name -> collection) is served only as ``href?{token}``
        self.sas_tokens: dict[str, str] = {}
        self.signed: dict[str, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> StacServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- content --------------------------------------------------------------------------
    def add_asset(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/assets/{name}``; returns its URL."""
        self.assets[name] = data
        return f"{self.url}/assets/{name}"

    def item(
        self,
        item_id: str,
        collection: str,
        when: str,
        bbox: list[float],
        assets: dict[str, dict[str, Any]],
        **properties: Any,
    ) -> dict[str, Any]:
        """Add an item (``properties`` may hold ``eo:cloud_cover``, ``platform``, ...)."""
        w, s, e, n = bbox
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": EXTENSIONS,
            "id": item_id,
            "collection": collection,
            "bbox": bbox,
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
            },
            "properties": {"datetime": when, **properties},
            "assets": assets,
            "links": [
                {"rel": "collection", "href": f"{self.url}/collections/{collection}"},
                {"rel": "self", "href": f"{self.url}/collections/{collection}/items/{item_id}"},
            ],
        }
        self.items.append(item)
        return item

    def _collections(self) -> list[dict[str, Any]]:
        ids = sorted({it["collection"] for it in self.items})
        return [
            {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": c,
                "description": c,
                "license": "proprietary",
                "extent": {
                    "spatial": {"bbox": [[-180, -90, 180, 90]]},
                    "temporal": {"interval": [[None, None]]},
                },
                "links": [{"rel": "items", "href": f"{self.url}/collections/{c}/items"}],
            }
            for c in ids
        ]

    def _landing(self) -> dict[str, Any]:
        u = self.url
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "test-api",
            "description": "static STAC API for tests",
            "conformsTo": CONFORMS,
            "links": [
                {"rel": "self", "href": f"{u}/", "type": "application/json"},
                {"rel": "root", "href": f"{u}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{u}/conformance"},
                {"rel": "data", "href": f"{u}/collections", "type": "application/json"},
                {
                    "rel": "search",
                    "href": f"{u}/search",
                    "type": "application/geo+json",
                    "method": "GET",
                },
                {
                    "rel": "search",
                    "href": f"{u}/search",
                    "type": "application/geo+json",
                    "method": "POST",
                },
            ],
        }

    def _search(self, params: dict[str, Any], method: str) -> dict[str, Any]:
        colls = params.get("collections")
        if isinstance(colls, str):
            colls = colls.split(",")
        bbox = params.get("bbox")
        if isinstance(bbox, str):
            bbox = [float(v) for v in bbox.split(",")]
        ids = params.get("ids")
        if isinstance(ids, str):
            ids = ids.split(",")
        query = params.get("query")
        if isinstance(query, str):
            query = json.loads(query)
        filt = params.get("filter")
        if isinstance(filt, str):
            filt = json.loads(filt)
        out = []
        for it in self.items:  # deliberately in insertion order: the client must sort
            if colls and it["collection"] not in colls:
                continue
            if ids and it["id"] not in ids:
                continue
            if bbox:
                w, s, e, n = it["bbox"]
                if w > bbox[2] or e < bbox[0] or s > bbox[3] or n < bbox[1]:
                    continue
            if not _in_window(it, params.get("datetime")):
                continue
            if query and not all(
                _compare(it["properties"].get(prop), op, ref)
                for prop, cond in query.items()
                for op, ref in cond.items()
            ):
                continue
            if filt and not _cql(it, filt):
                continue
            out.append(it)
        limit = int(params.get("limit") or 10)
        start = int(params.get("token") or 0)
        page = out[start : start + limit]
        links: list[dict[str, Any]] = [{"rel": "root", "href": f"{self.url}/"}]
        if start + limit < len(out):
            token = str(start + limit)
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": f"{self.url}/search",
                        "method": "POST",
                        "body": {**params, "token": token},
                    }
                )
            else:
                q = {k: v for k, v in params.items() if k != "token"}
                q["token"] = token
                links.append(
                    {"rel": "next", "href": f"{self.url}/search?{urllib.parse.urlencode(q)}"}
                )
        return {
            "type": "FeatureCollection",
            "features": page,
            "links": links,
            "numberMatched": len(out),
            "numberReturned": len(page),
        }

    # -- HTTP -----------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, data: Any, status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._route("GET", {})

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                self._route("POST", body)

            def _route(self, method: str, body: dict[str, Any]) -> None:
                url = urllib.parse.urlsplit(self.path)
                path = url.path.rstrip("/") or "/"
                server.requests.append((method, path, self.headers.get("Range")))
                if path == "/":
                    return self._json(server._landing())
                if path == "/conformance":
                    return self._json({"conformsTo": CONFORMS})
                if path == "/collections":
                    return self._json({"collections": server._collections(), "links": []})
                if path.startswith("/collections/"):
                    cid = path.split("/")[2]
                    found = [c for c in server._collections() if c["id"] == cid]
                    return self._json(found[0]) if found else self._json({}, 404)
                if path == "/search":
                    params = body if method == "POST" else dict(urllib.parse.parse_qsl(url.query))
                    return self._json(server._search(params, method))
                if path.startswith("/sas/"):
                    coll = path.removeprefix("/sas/")
                    if coll not in server.sas_tokens:
                        return self._json({"code": "NotFound"}, 404)
                    expiry = "2099-01-01T00:00:00Z"
                    return self._json({"token": server.sas_tokens[coll], "msft:expiry": expiry})
                if path.startswith("/assets/"):
                    name = path.removeprefix("/assets/")
                    coll = server.signed.get(name)
                    if coll is not None and url.query != server.sas_tokens.get(coll):
                        return self._json({"code": "AuthenticationFailed"}, 403)
                    return self._asset(name)
                return self._json({"code": "NotFound"}, 404)

            def _asset(self, name: str) -> None:
                if name not in server.assets:
                    return self._json({"code": "NotFound"}, 404)
                if server.fail_5xx.get(name, 0) > 0:
                    server.fail_5xx[name] -= 1
                    return self._json({"code": "Unavailable"}, 503)
                data = server.assets[name]
                if name in server.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                total = len(data)
                start, status = 0, 200
                m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                if m:
                    start = int(m.group(1))
                    if start >= total:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{total}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                    status = 206
                end = total - 1 if not m or not m.group(2) else min(int(m.group(2)), total - 1)
                chunk = data[start : end + 1]
                self.send_response(status)
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(chunk)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
                self.end_headers()
                drop = server.drop_after.pop(name, None)
                if drop is not None and drop < len(chunk):
                    self.wfile.write(chunk[:drop])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                self.wfile.write(chunk)
                return None

        return Handler


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
