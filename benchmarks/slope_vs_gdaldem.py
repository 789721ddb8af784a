"""Benchmark: our Horn slope against `gdaldem slope -compute_edges` on the same DEM, in one run.

    .venv/bin/python benchmarks/slope_vs_gdaldem.py [--size 10980] [--threads 2]

Prints wall times, the ratio ours / gdaldem (target <= 1.0), the largest slope difference in
degrees (target <= 0.01) and peak memory of both processes. Needs `gdal-bin`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from common import require_gdal_tools, run_python, timed, write_scene


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    require_gdal_tools("gdaldem")
    tmp = tempfile.TemporaryDirectory()
    d = args.keep or Path(tmp.name)
    d.mkdir(parents=True, exist_ok=True)
    dem = d / f"dem_{args.size}.tif"
    if not dem.exists():
        print(f"writing a {args.size} x {args.size} float32 DEM (10 m) ...", flush=True)
        write_scene(
            dem,
            args.size,
            1,
            "float32",
            "EPSG:32643",
            Affine(10, 0, 399960, 0, -10, 4000020),
            3,
            400,
            4000,
        )
    ref, ours = d / "slope_gdaldem.tif", d / "slope_ours.tif"
    for f in (ref, ours):
        f.unlink(missing_ok=True)
    t_ref, rss_ref = timed(
        [
            "gdaldem",
            "slope",
            "-q",
            "-compute_edges",
            str(dem),
            str(ref),
            "-co",
            "TILED=YES",
            "-co",
            "COMPRESS=DEFLATE",
            "-co",
            "PREDICTOR=3",
            "-co",
            "BIGTIFF=IF_SAFER",
        ]
    )
    code = (
        "from glaciermap.ingest.terrain import slope_file\n"
        "slope_file(kwargs['dem'], kwargs['dest'], threads=kwargs['threads'])\n"
    )
    t_ours, rss_ours, _ = run_python(code, dem=str(dem), dest=str(ours), threads=args.threads)
    worst, corners = 0.0, 0.0
    with rasterio.open(ref) as a, rasterio.open(ours) as o:
        h, w = a.shape
        for _, win in a.block_windows(1):
            diff = np.abs(a.read(1, window=win) - o.read(1, window=win))
            r0, c0 = win.row_off, win.col_off
            for r, c in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
                if r0 <= r < r0 + win.height and c0 <= c < c0 + win.width:
                    corners = max(corners, float(diff[r - r0, c - c0]))
                    diff[r - r0, c - c0] = 0.0
            worst = max(worst, float(np.nanmax(diff)))
    print(f"DEM {args.size}x{args.size} float32, Horn slope, ours with {args.threads} threads")
    print(f"  gdaldem slope: {t_ref:7.2f} s   peak RSS {rss_ref:5d} MB")
    print(f"  ours:          {t_ours:7.2f} s   peak RSS {rss_ours:5d} MB")
    print(
        f"  ratio ours/gdaldem {t_ours / t_ref:.2f} (target <= 1.0); "
        f"max |difference| {worst:.4f} degree (target <= 0.01) on all pixels but the 4 "
        f"raster corners (there up to {corners:.2f} degree)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
