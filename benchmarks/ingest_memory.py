"""Benchmark: peak memory of optical ingestion does not grow with the scene size.

Composites a six-band scene of growing size (2000, 6000, 10980 pixels at 10 m) onto the same
20 x 20 km region grid and prints each run's wall time and peak RSS (VmHWM of a fresh
process). Bounded ingestion keeps the peak flat: it grows with the region grid's block size,
not with the scene.

    .venv/bin/python benchmarks/ingest_memory.py [--sizes 2000 6000 10980]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from affine import Affine
from common import run_python, write_scene

from glaciermap.grid import RegionGrid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 6000, 10980])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    d = args.keep or Path(tmp.name)
    d.mkdir(parents=True, exist_ok=True)
    # The region: 20 x 20 km inside the smallest scene's footprint, off its pixel grid by 5 m.
    x0, y0 = 399960 + 5, 4000020 - 20000 - 5
    grid = RegionGrid.from_bounds("EPSG:32643", (x0, y0, x0 + 20000, y0 + 20000), 10.0)
    grid.save(d / "grid.json")
    print(f"region grid {grid.height} x {grid.width} (10 m); scenes six-band uint16")
    for size in args.sizes:
        scene = d / f"scene_{size}.tif"
        if not scene.exists():
            write_scene(
                scene,
                size,
                6,
                "uint16",
                "EPSG:32643",
                Affine(10, 0, 399960, 0, -10, 4000020),
                11,
                700,
                4000,
                nodata=0,
            )
        sidecar = d / f"scene_{size}.tif.bands.yaml"
        sidecar.write_text(
            yaml.safe_dump(
                {
                    "date": "2021-08-18",
                    "sensor": "benchmark",
                    "bands": {
                        n: i + 1
                        for i, n in enumerate(["blue", "green", "red", "nir", "swir1", "swir2"])
                    },
                }
            )
        )
        code = (
            "from glaciermap.optical import build_optical_composite\n"
            "build_optical_composite([kwargs['scene'], kwargs['sidecar']], kwargs['grid'],\n"
            "                        kwargs['dest'], threads=kwargs['threads'])\n"
        )
        t, rss, _ = run_python(
            code,
            scene=str(scene),
            sidecar=str(sidecar),
            grid=str(d / "grid.json"),
            dest=str(d / f"opt_{size}.tif"),
            threads=args.threads,
        )
        mb = size * size * 6 * 2 / 1e6
        print(f"  scene {size:6d} px ({mb:7.0f} MB of pixels): {t:6.2f} s, peak RSS {rss:5d} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
