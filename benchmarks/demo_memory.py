"""Benchmark: the synthetic world generates in bounded memory, up to a full Sentinel-2 tile.

Generates demo worlds of growing size (default 2000, 5500 and 10980 pixels of 10 m a side,
the last one a full Sentinel-2 tile) with one Sentinel-2 L2A scene, one Sentinel-1 date
(VV, VH, layover/shadow map), Copernicus DEM tiles and an inventory, each in a fresh
process, and prints wall time, peak RSS (VmHWM) and the bytes written. The world's physics
grid is capped (1.5 M cells) and every product is rendered block by block, so the peak stays
nearly flat while the world grows 30-fold in area; one float32 layer of the full tile alone
would take 482 MB.

    .venv/bin/python benchmarks/demo_memory.py [--sizes 2000 5500 10980] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import run_python

CODE = """
import dataclasses
from glaciermap.synthetic import demo
from glaciermap.core.grid import RegionGrid
size = kwargs["size"]
x0, y0 = 400000.0, 4000000.0
grid = RegionGrid.from_bounds("EPSG:32643", (x0, y0, x0 + size * 10, y0 + size * 10), 10.0)
ep = demo.EpochSpec(
    year=2021, sensor="sentinel-2", ela_m=5000.0, optical_dates=("2021-08-18",),
    sar_dates=("2021-08-06",), coherence=False,
)
spec = demo.WorldSpec(region="bench", grid=grid, seed=7, epochs=(ep,), margin_m=500.0)
files = demo.generate_world(spec, kwargs["out"])
result = sum(f.stat().st_size for f in files) / 1e6
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5500, 10980])
    ap.add_argument("--keep", type=Path, help="keep the generated worlds here")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    base = args.keep or Path(tmp.name)
    cols = ("world (px of 10 m)", "area km2", "seconds", "peak RSS MB", "MB written")
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, (20, 9, 8, 12, 11), strict=True)))
    for size in args.sizes:
        out = base / f"world_{size}"
        seconds, rss, written = run_python(CODE, size=size, out=str(out))
        area = (size * 10 / 1000) ** 2
        print(f"{size:>20} {area:>9.0f} {seconds:>8.1f} {rss:>12} {written:>11.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
