"""Benchmark: our reprojection of a full Sentinel-2-sized six-band scene to a region grid
against `gdalwarp` (same resampling, same threads), in one run.

    .venv/bin/python benchmarks/reproject_vs_gdalwarp.py [--size 10980] [--threads 2]

For two region grids (same UTM zone shifted by half a pixel; neighbouring UTM zone) it prints
wall times, their ratio (ours / gdalwarp; target <= 1.1), the largest difference in digital
numbers (target <= 1) and the peak memory of each process, for ``reproject_file`` and for
the workflow's own path (``warped()``, the WarpedVRT the optical tiles read window by window).
Needs `gdal-bin`.

Why gdalwarp runs with and without ``-wo XSCALE=... -wo YSCALE=...``: for bilinear and cubic
resampling GDAL's warp kernel takes its resampling scale, per chunk, as the ratio of the
chunk's size to its source window's. Across UTM zones the mapping rotates the pixels (by
3.5 degrees here), the source window is the bounding box of a rotated chunk and thus larger by
an amount that depends on the chunk's shape; the scale drops below 0.95 and the kernel widens
(a downsampling filter) by a chunk-dependent amount. gdalwarp's default result therefore
depends on how it divides the output (its ``-wm`` memory limit): the benchmark prints the
difference between ``-wm 256`` and ``-wm 2048``. ``glaciermap.core.reproject`` fixes the scale from
the source and grid resolutions (:func:`glaciermap.core.reproject.warp_scale`; 1 for equal
resolutions, below 1 when downsampling), as gdalwarp does when given the same values, which
removes the dependence on chunking; the comparison that measures our warp is against gdalwarp
with the same scale. gdalwarp is run with ``-et 0`` (exact coordinate transformation) and with
its default ``-et 0.125``. rasterio's warp always approximates the transformation (0.125 pixel
threshold) along the rows of each block, so ``reproject_file`` narrows its blocks until that
approximation is within 0.01 pixel (512 columns across zones, 0.004 pixel; 2048 within a
zone, exact): it is compared with ``-et 0``. gdalwarp's own approximation spans whole output
rows (9000 pixels here) and is up to 0.125 pixel off, several DN on this scene.
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

from glaciermap.core.grid import RegionGrid
from glaciermap.core.reproject import warp_options


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


def gdalwarp(
    scene: Path, grid: RegionGrid, dest: Path, threads: int, et: float, wm: int, wo: list[str]
) -> tuple[float, int]:
    """Run gdalwarp onto ``grid``; wall time and peak RSS."""
    gl, gb, gr, gt = grid.bounds
    cmd = ["gdalwarp", "-q", "-overwrite", "-t_srs", grid.crs]
    cmd += ["-te", str(gl), str(gb), str(gr), str(gt)]
    cmd += ["-tr", str(grid.resolution), str(grid.resolution)]
    cmd += ["-et", str(et), "-r", "bilinear", "-multi"]
    cmd += ["-wo", f"NUM_THREADS={threads}", "-wm", str(wm)]
    for opt in wo:
        cmd += ["-wo", opt]
    for co in ("TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "BLOCKXSIZE=256", "BLOCKYSIZE=256"):
        cmd += ["-co", co]
    cmd += ["-co", "BIGTIFF=IF_SAFER", str(scene), str(dest)]
    return timed(cmd)


REPROJECT_FILE = (
    "from glaciermap.core.reproject import reproject_file\n"
    "reproject_file(kwargs['src'], g, kwargs['dest'], threads=kwargs['threads'])\n"
)
WORKFLOW_PATH = (
    "import rasterio\n"
    "from glaciermap.core.reproject import CONTINUOUS, block_windows, warped\n"
    "with warped(kwargs['src'], g, CONTINUOUS, threads=kwargs['threads']) as v:\n"
    "    prof = g.profile(count=v.count, dtype=v.dtypes[0], nodata=v.nodata)\n"
    "    prof.update(predictor=2, num_threads=kwargs['threads'])\n"
    "    with rasterio.open(kwargs['dest'], 'w', **prof) as dst:\n"
    "        for win in block_windows(g, 1024):\n"
    "            dst.write(v.read(window=win), window=win)\n"
)


def _warp_in_process(
    code: str, grid: RegionGrid, scene: Path, dest: Path, threads: int
) -> tuple[float, int]:
    """Run a warp (``code``, with ``g`` the grid) in its own process: wall time, peak RSS."""
    head = "from glaciermap.core.grid import RegionGrid\ng = RegionGrid.from_dict(kwargs['grid'])\n"
    t, rss, _ = run_python(
        head + code, grid=grid.to_dict(), src=str(scene), dest=str(dest), threads=threads
    )
    return t, rss


def compare(
    scene: Path, grid: RegionGrid, d: Path, threads: int, label: str, size: int, chunking: bool
) -> None:
    with rasterio.open(scene) as src:
        opts = warp_options(src, grid)
    scale_wo = [f"{k}={v}" for k, v in opts.items()]
    ours, vrt = d / "ours.tif", d / "workflow.tif"
    ours.unlink(missing_ok=True)
    t_ours, rss_ours = _warp_in_process(REPROJECT_FILE, grid, scene, ours, threads)
    # The workflow's own path: optical tiles read each scene through warped() (a WarpedVRT
    # with the same scale options) window by window; written alike for a fair comparison.
    t_vrt, rss_vrt = _warp_in_process(WORKFLOW_PATH, grid, scene, vrt, threads)
    print(
        f"\n{label}: scene {size}x{size}x6 uint16 -> grid {grid.height}x{grid.width} "
        f"({grid.crs}, 10 m), bilinear, {threads} threads",
        flush=True,
    )
    print(f"  ours ({' '.join(scale_wo)}): {t_ours:7.2f} s   peak RSS {rss_ours:5d} MB")
    print(f"  workflow path (warped(), 1024 px windows): {t_vrt:7.2f} s   peak RSS {rss_vrt:5d} MB")
    et_values = (0.125, 0.0) if chunking else (0.125,)
    runs = [(et, wo) for et in et_values for wo in ([], scale_wo)]
    for et, wo in runs:
        ref = d / "gdalwarp.tif"
        t_ref, rss_ref = gdalwarp(scene, grid, ref, threads, et, 256, wo)
        diff, diff_vrt = max_dn_difference(ref, ours), max_dn_difference(ref, vrt)
        name = f"gdalwarp -et {et:g}" + (" -wo XSCALE/YSCALE as ours" if wo else " (default)")
        print(
            f"  {name:45s} {t_ref:7.2f} s   peak RSS {rss_ref:5d} MB   "
            f"ours/gdalwarp time {t_ours / t_ref:.2f}, max |difference| {diff} DN; "
            f"workflow path/gdalwarp {t_vrt / t_ref:.2f}, {diff_vrt} DN",
            flush=True,
        )
    if chunking:  # gdalwarp against itself with other chunks (-wm 2048 instead of 256)
        out = []
        for wo in ([], scale_wo):
            a, b = d / "wm256.tif", d / "wm2048.tif"
            gdalwarp(scene, grid, a, threads, 0.0, 256, wo)
            gdalwarp(scene, grid, b, threads, 0.0, 2048, wo)
            out.append(max_dn_difference(a, b))
        print(
            f"  gdalwarp -et 0, -wm 256 against -wm 2048 (other chunks): {out[0]} DN by default, "
            f"{out[1]} DN with -wo XSCALE/YSCALE",
            flush=True,
        )
    print("  targets: ratio <= 1.1 and <= 1 DN against gdalwarp with the same options")


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
    compare(scene, shifted, d, args.threads, "same zone, shifted 5 m", args.size, False)
    compare(scene, neighbour, d, args.threads, "neighbouring UTM zone", args.size, True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
