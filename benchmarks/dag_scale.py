"""Benchmark: DAG-build time of a large configuration (not a test).

Builds a synthetic real-data layout of N regions x 2 epochs (empty placeholder files named like
Sentinel-2 bands, Sentinel-1 backscatter/coherence, Copernicus DEM tiles and inventories) in a
temporary folder, then times `snakemake -n` for all outlines. Target: < 10 s for 50 x 2.

    .venv/bin/python benchmarks/dag_scale.py [--regions 50]
    .venv/bin/python benchmarks/dag_scale.py --region-km 1000 500   # an Alps-size region
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
S2_BANDS = ["B02_10m", "B03_10m", "B04_10m", "B08_10m", "B11_20m", "B12_20m", "SCL_20m"]


def make_layout(
    root: Path,
    n_regions: int,
    years: tuple[int, ...] = (2016, 2021),
    size_km: tuple[float, float] = (20.0, 20.0),
) -> dict:  # type: ignore[type-arg]
    regions = {}
    w, h = size_km[0] * 1000, size_km[1] * 1000
    for i in range(n_regions):
        name = f"r{i:03d}"
        x0, y0 = 400000 + (i % 10) * (w + 10000), 3900000 + (i // 10) * (h + 10000)
        regions[name] = {
            "crs": "EPSG:32643",
            "bounds": [x0, y0, x0 + w, y0 + h],
            "resolution_m": 10,
            "years": list(years),
        }
        for year in years:
            opt = root / "data" / name / str(year) / "optical"
            sar = root / "data" / name / str(year) / "sar"
            opt.mkdir(parents=True)
            sar.mkdir(parents=True)
            for k in range(3):  # three scenes per epoch
                for b in S2_BANDS:
                    (opt / f"T43SDV_{year}08{10 + k:02d}T054600_{b}.tif").touch()
            for d in ("06", "18", "30"):
                for pol in ("VV", "VH"):
                    (sar / f"S1A_IW_{year}08{d}T011520_DVP_RTC20_G_gpuned_5A3C_{pol}.tif").touch()
            (sar / f"S1AA_{year}0806T0_{year}0818T0_VVP012_INT40_corr.tif").touch()
            inv = root / "data" / "inventory"
            inv.mkdir(exist_ok=True)
            (inv / f"{name}_{year}.gpkg").touch()
    dem = root / "data" / "dem"
    dem.mkdir()
    for lat in range(34, 38) if size_km == (20.0, 20.0) else range(30, 46):
        for lon in range(72, 78) if size_km == (20.0, 20.0) else range(60, 90):
            (dem / f"Copernicus_DSM_COG_10_N{lat:02d}_00_E{lon:03d}_00_DEM.tif").touch()
    targets = [f"{r}_{y}" for r in regions for y in years]
    return {
        "data_dir": "data",
        "regions": regions,
        "targets": targets,
        "datasets": {"big": {"members": targets[:10]}},
        "model": {"dataset": "big", "arch": "unet", "featureset": "optical_dem_sar"},
    }


def dry_run(n_regions: int, size_km: tuple[float, float] = (20.0, 20.0)) -> tuple[float, str]:
    """Wall time of `snakemake -n` for all outlines of ``n_regions`` x 2 epochs, and jobs."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cfg = make_layout(root, n_regions, size_km=size_km)
        (root / "config").mkdir()
        (root / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
        targets = [f"outlines/{t}.gpkg" for t in cfg["targets"]]
        cmd = [
            str(Path(sys.executable).parent / "snakemake"),
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(root),
            "-n",
            "--quiet",
            "rules",
            "--cores",
            "32",
            *targets,
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(proc.stdout[-2000:] + proc.stderr[-4000:])
        table = proc.stdout.split("Reasons:")[0].strip()
        return dt, table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--regions", type=int, default=50)
    ap.add_argument(
        "--region-km",
        type=float,
        nargs=2,
        metavar=("WIDTH", "HEIGHT"),
        help="instead: one region this large at 10 m (Alps: 1000 500), cut into processing tiles",
    )
    args = ap.parse_args()
    base, _ = dry_run(1)
    if args.region_km:
        big, table = dry_run(1, tuple(args.region_km))
        print(table)
        print(f"dry run, 1 region of 20 x 20 km x 2 epochs: {base:.2f} s")
        w, h = args.region_km
        print(f"dry run, 1 region of {w:.0f} x {h:.0f} km x 2 epochs: {big:.2f} s (target < 30 s)")
        return 0
    big, table = dry_run(args.regions)
    print(table)
    print(f"dry run, 1 region x 2 epochs:  {base:.2f} s (snakemake start-up + parsing)")
    print(f"dry run, {args.regions} regions x 2 epochs: {big:.2f} s (target < 10 s)")
    print(f"DAG cost of the extra regions: {big - base:.2f} s; ratio {big / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
