"""Benchmark: our polygonization against `gdal_polygonize.py` on the same binary mask.

    .venv/bin/python benchmarks/polygonize_vs_gdal.py [--size 10000] [--speckle 0.002] [--keep DIR]

Writes a ``size`` x ``size`` uint8 mask (10 m pixels; blobs of a smooth pattern, a share
``speckle`` of its pixels flipped: specks on rock and pinholes in the ice; written block by
block) and polygonizes it twice, each in its
own process: with :func:`glaciermap.products.outlines.polygonize_probability` with the
clean-up off (``smooth_m=0, min_area_km2=0, max_hole_km2=0``, no inventory, no DEM) and with
``gdal_polygonize.py`` (4-connectivity, GeoPackage). Prints the time ratio ours / gdal
(target <= 1.0), the peak memory of both (target: ours lower), and each tool's floor (its
peak on a 64 x 64 mask: program and libraries) with the memory above it, the polygon counts
and the total areas with their relative difference (target <= 0.1 %). Needs `gdal-bin` (skipped
with a message if absent).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from affine import Affine
from common import run_python, smooth_field, timed
from rasterio.windows import Window

CRS = "EPSG:32643"
PIXEL = 10.0


def write_mask(path: Path, size: int, speckle: float, seed: int = 7) -> int:
    """The benchmark mask, block by block; returns its number of ice pixels."""
    prof = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "crs": CRS,
        "transform": Affine(PIXEL, 0, 400_000, 0, -PIXEL, 4_100_000),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "nodata": 0,
        "BIGTIFF": "IF_SAFER",
    }
    block, ice = 2048, 0
    with rasterio.open(path, "w", **prof) as dst:
        dst.set_band_description(1, "probability")
        for r0 in range(0, size, block):
            for c0 in range(0, size, block):
                h, w = min(block, size - r0), min(block, size - c0)
                rows, cols = np.arange(r0, r0 + h), np.arange(c0, c0 + w)
                field = smooth_field(rows, cols, seed)
                rng = np.random.default_rng([seed, r0, c0])
                flip = rng.random((h, w)) < speckle  # speckle on rock, pinholes in the ice
                m = (field > 1.2) ^ flip
                ice += int(m.sum())
                dst.write(m.astype(np.uint8)[None], window=Window(c0, r0, w, h))
    return ice


def polygons(path: Path) -> tuple[int, float]:
    """Number of features and their total area (km2) of the first layer of ``path``."""
    geoms = pyogrio.read_dataframe(path, layer=0, columns=[]).geometry.values
    return len(geoms), float(shapely.area(geoms).sum()) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--speckle", type=float, default=0.002, help="share of flipped pixels")
    ap.add_argument("--keep", type=Path, help="folder to keep the mask in (reused)")
    args = ap.parse_args()
    gdal_polygonize = shutil.which("gdal_polygonize.py")
    if gdal_polygonize is None:
        print("skipped: gdal_polygonize.py not found (apt-get install gdal-bin)")
        return 0
    tmp = tempfile.TemporaryDirectory()
    d = args.keep or Path(tmp.name)
    d.mkdir(parents=True, exist_ok=True)
    mask = d / f"mask_{args.size}_{args.speckle:g}.tif"
    if not mask.exists():
        print(f"writing a {args.size} x {args.size} uint8 mask ...", flush=True)
        write_mask(mask, args.size, args.speckle)
    with rasterio.open(mask) as src:
        ice_km2 = sum(
            int(np.count_nonzero(src.read(1, window=w))) for _, w in src.block_windows(1)
        ) * (PIXEL**2 / 1e6)
    tiny = d / "mask_64.tif"  # each tool's floor: its program and libraries, one polygon
    if not tiny.exists():
        write_mask(tiny, 64, 0.0)
    code = (
        "from glaciermap.products.outlines import polygonize_probability\n"
        "polygonize_probability(kwargs['mask'], kwargs['dest'], 'bench', 2020,\n"
        "                       smooth_m=0, min_area_km2=0, max_hole_km2=0)\n"
    )

    def both(m: Path) -> tuple[float, int, float, int]:
        ref, ours = d / "gdal.gpkg", d / "ours.gpkg"
        for f in (ref, ours):
            f.unlink(missing_ok=True)
        t_ref, rss_ref = timed(
            [gdal_polygonize, "-q", str(m), "-f", "GPKG", str(ref), "outlines", "value"]
        )
        t_ours, rss_ours, _ = run_python(code, mask=str(m), dest=str(ours))
        return t_ref, rss_ref, t_ours, rss_ours

    _, floor_ref, _, floor_ours = both(tiny)
    t_ref, rss_ref, t_ours, rss_ours = both(mask)
    ref, ours = d / "gdal.gpkg", d / "ours.gpkg"
    n_ref, a_ref = polygons(ref)
    n_ours, a_ours = polygons(ours)
    print(f"mask: {args.size} x {args.size} px, speckle {args.speckle:g}, ice {ice_km2:.2f} km2")
    print(f"gdal_polygonize.py: {t_ref:7.2f} s  peak RSS {rss_ref:6d} MB  {n_ref} polygons")
    print(f"ours:               {t_ours:7.2f} s  peak RSS {rss_ours:6d} MB  {n_ours} polygons")
    print(f"time ratio ours / gdal: {t_ours / t_ref:.2f} (target <= 1.0)")
    print(f"peak RSS ours / gdal:   {rss_ours / rss_ref:.2f} (target < 1.0)")
    print(
        f"floor (64^2 mask): gdal {floor_ref} MB, ours {floor_ours} MB; above it: gdal "
        f"{rss_ref - floor_ref} MB, ours {rss_ours - floor_ours} MB"
    )
    print(f"total area: gdal {a_ref:.4f} km2, ours {a_ours:.4f} km2, mask {ice_km2:.4f} km2")
    print(f"relative area difference ours vs gdal: {abs(a_ours - a_ref) / a_ref:.2e} (<= 1e-3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
