"""Benchmark: our reprojection of a full Sentinel-2-sized six-band scene to a region grid
against `gdalwarp` (same resampling, same threads), in one run.

    .venv/bin/python benchmarks/reproject_vs_gdalwarp.py [--size 10980] [--threads 2]

For two region grids (same UTM zone shifted by half a pixel; neighbouring UTM zone, with the
approximate and with the exact coordinate transformer: GDAL versions differ in the
approximation, so only exact transforms agree to 1 DN across GDAL 3.6 and 3.10) it prints
wall times, their ratio (ours / gdalwarp; target <= 1.1), the largest difference in digital
numbers (target <= 1) and the peak memory of each process. Needs `gdal-bin`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from common import require_gdal_tools, run_python, timed, write_scene

from glaciermap.grid import RegionGrid


def max_dn_difference(a_path: Path, b_path: Path) -> int:
    """Largest |a - b| where both hold data, read block by block."""
    worst = 0
    with rasterio.open(a_path) as a, rasterio.open(b_path) as b:
        for _, win in a.block_windows(1):
            x, y = a.read(window=win).astype(np.int64), b.read(window=win).astype(np.int64)
            both = (x != 0) & (y != 0)
            if both.any():
                worst = max(worst, int(np.abs(x - y)[both].max()))
    return worst


def compare(
    scene: Path, grid: RegionGrid, d: Path, threads: int, label: str, size: int, et: float
) -> None:
    gl, gb, gr, gt = grid.bounds
    ref, ours = d / "gdalwarp.tif", d / "ours.tif"
    for f in (ref, ours):
        f.unlink(missing_ok=True)
    cmd = [
        "gdalwarp",
        "-q",
        "-t_srs",
        grid.crs,
        "-te",
        str(gl),
        str(gb),
        str(gr),
        str(gt),
        "-tr",
        "10",
        "10",
        "-et",
        str(et),
        "-r",
        "bilinear",
        "-multi",
        "-wo",
        f"NUM_THREADS={threads}",
        "-wm",
        "256",
        "-co",
        "TILED=YES",
        "-co",
        "COMPRESS=DEFLATE",
        "-co",
        "PREDICTOR=2",
        "-co",
        "BLOCKXSIZE=256",
        "-co",
        "BLOCKYSIZE=256",
        "-co",
        "BIGTIFF=IF_SAFER",
        str(scene),
        str(ref),
    ]
    t_ref, rss_ref = timed(cmd)
    code = (
        "from glaciermap.grid import RegionGrid\n"
        "from glaciermap.reproject import reproject_file\n"
        "g = RegionGrid.from_dict(kwargs['grid'])\n"
        "reproject_file(kwargs['src'], g, kwargs['dest'], threads=kwargs['threads'],\n"
        "               tolerance=kwargs['et'])\n"
    )
    t_ours, rss_ours, _ = run_python(
        code, grid=grid.to_dict(), src=str(scene), dest=str(ours), threads=threads, et=et
    )
    diff = max_dn_difference(ref, ours)
    print(
        f"\n{label}: scene {size}x{size}x6 uint16 -> grid {grid.height}x{grid.width} "
        f"({grid.crs}, 10 m), bilinear, {threads} threads"
    )
    print(f"  gdalwarp: {t_ref:7.2f} s   peak RSS {rss_ref:5d} MB")
    print(f"  ours:     {t_ours:7.2f} s   peak RSS {rss_ours:5d} MB")
    print(
        f"  ratio ours/gdalwarp {t_ours / t_ref:.2f} (target <= 1.1); "
        f"max |difference| {diff} DN (target <= 1)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=10980, help="scene size in pixels (10 m)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="folder to keep the files in")
    args = ap.parse_args()
    require_gdal_tools("gdalwarp")
    tmp = tempfile.TemporaryDirectory()
    d = args.keep or Path(tmp.name)
    d.mkdir(parents=True, exist_ok=True)
    scene = d / f"scene_{args.size}.tif"
    src_tr = Affine(10, 0, 399960, 0, -10, 4000020)  # a Sentinel-2 tile origin in UTM 43N
    if not scene.exists():
        print(f"writing a {args.size} x {args.size} x 6 uint16 scene ...", flush=True)
        write_scene(scene, args.size, 6, "uint16", "EPSG:32643", src_tr, 7, 700, 4000, nodata=0)
    with rasterio.open(scene) as src:
        b = src.bounds
    m = 0.1 * (b.right - b.left)
    inner = (b.left + m, b.bottom + m, b.right - m, b.top - m)
    shifted = RegionGrid.from_bounds("EPSG:32643", tuple(v + 5 for v in inner), 10.0)
    left, bt, r, t = rasterio.warp.transform_bounds("EPSG:32643", "EPSG:32644", *inner)
    neighbour = RegionGrid.from_bounds(
        "EPSG:32644", (round(left, -1), round(bt, -1), round(r, -1), round(t, -1)), 10.0
    )
    runs = (
        ("same zone, shifted 5 m", shifted, 0.125),
        ("neighbouring UTM zone, approximate transformer (-et 0.125)", neighbour, 0.125),
        ("neighbouring UTM zone, exact transformer (-et 0)", neighbour, 0.0),
    )
    for label, grid, et in runs:
        compare(scene, grid, d, args.threads, label, args.size, et)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
