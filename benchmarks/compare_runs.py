"""Compare the products of two workflow runs (not a test): rasters pixel for pixel (band
names, CRS, transform), GeoPackages layer by layer (attributes and geometries), JSON and CSV
by content with timing fields left out. Used to check that a refactoring changes no output:

    snakemake -d /tmp/before --cores 2   # old code (e.g. a git worktree on PYTHONPATH)
    snakemake -d /tmp/after --cores 2    # new code
    .venv/bin/python benchmarks/compare_runs.py /tmp/before /tmp/after

Exits 1 when any product differs or is missing.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio

SKIP_DIRS = {".snakemake", "logs", "resources", "config"}
TIMING = {"seconds", "time", "tiles", "source"}  # run-dependent fields and columns


def _json_equal(a: bytes, b: bytes) -> bool:
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in TIMING}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return bool(clean(json.loads(a)) == clean(json.loads(b)))


def _csv_equal(a: bytes, b: bytes) -> bool:
    da, db = (pd.read_csv(io.BytesIO(x)) for x in (a, b))
    return da.drop(columns=[c for c in da if c in TIMING]).equals(
        db.drop(columns=[c for c in db if c in TIMING])
    )


def same(pa: Path, pb: Path) -> bool | None:
    """Whether two products are equal (None: a kind not compared)."""
    if pa.suffix == ".tif":
        with rasterio.open(pa) as x, rasterio.open(pb) as y:
            return bool(
                x.descriptions == y.descriptions
                and x.crs == y.crs
                and x.transform == y.transform
                and np.array_equal(x.read(), y.read(), equal_nan=True)
            )
    if pa.suffix == ".gpkg":
        for layer, _ in pyogrio.list_layers(pa):
            ga, gb = gpd.read_file(pa, layer=layer), gpd.read_file(pb, layer=layer)
            attrs = ga.drop(columns="geometry").equals(gb.drop(columns="geometry"))
            if not (attrs and ga.geometry.equals(gb.geometry)):
                return False
        return True
    if pa.suffix == ".json":
        return _json_equal(pa.read_bytes(), pb.read_bytes())
    if pa.suffix == ".csv":
        return _csv_equal(pa.read_bytes(), pb.read_bytes())
    if pa.suffix in (".md", ".npy"):
        return pa.read_bytes() == pb.read_bytes()
    return None


def main() -> int:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    n = bad = 0
    for pa in sorted(a.rglob("*")):
        if not pa.is_file() or SKIP_DIRS & set(pa.relative_to(a).parts):
            continue
        pb = b / pa.relative_to(a)
        if not pb.exists():
            print("missing", pb)
            bad += 1
            continue
        result = same(pa, pb)
        if result is None:
            continue
        n += 1
        if not result:
            bad += 1
            print("differs", pa.relative_to(a))
    print(f"compared {n} products: {bad} differ or are missing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
