"""Benchmark: wall time and peak memory of every stage as the region grows (not a test).

Builds the demo's target region `demo` at N x N px (10 m; 2000 px = 20 km, 8000 px = the 80 km
of hunza) for each ``--sizes`` value, runs the workflow to its outlines and their evaluation
with a random forest trained on the fixed-size `demo-train` world (so training does not grow
with N), and prints, per stage, the wall time and peak RSS that Snakemake's `benchmark:` files
recorded (per-tile stages: the largest tile), and each peak's ratio to the smallest size's.
The goal (issue "Regions of any size"): per-tile stages flat in N; gathering and
polygonization within 1.5x of the 2000 px peak. The rules' `mem_mb` defaults come from
these peaks (with headroom for 2048 px tiles at 10 m).

    .venv/bin/python benchmarks/region_scale.py --sizes 2000 4000 8000
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from pathlib import Path

import yaml
from common import run_workflow

REPO = Path(__file__).resolve().parents[1]


def config(n_px: int) -> dict:  # type: ignore[type-arg]
    cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    left, bottom = cfg["regions"]["demo"]["bounds"][:2]
    cfg["regions"]["demo"]["bounds"] = [left, bottom, left + 10 * n_px, bottom + 10 * n_px]
    cfg["regions"]["demo"]["years"] = [2021]
    cfg["demo"]["worlds"]["demo"]["epochs"].pop(2005, None)
    cfg["targets"], cfg["changes"], cfg["model"]["overrides"] = ["demo_2021"], {"pairs": []}, {}
    cfg["model"]["arch"] = "rf"
    cfg["training"]["rf"]["tune"] = False  # a constant cost, not what this measures
    cfg["benchmark"] = {"archs": ["rf"], "featuresets": [cfg["model"]["featureset"]]}
    return cfg


def stage_of(tsv: Path, bench: Path) -> str:
    parts = tsv.relative_to(bench).with_suffix("").parts
    return parts[0] + ("_tile" if re.fullmatch(r"r\d+c\d+", parts[-1]) else "")


def peaks(wd: Path, region_year: str) -> dict[str, tuple[float, float, int]]:
    """Stage -> (largest wall time s, largest max_rss MB, jobs) of the target region's jobs."""
    bench = wd / "logs/benchmarks"
    out: dict[str, tuple[float, float, int]] = {}
    for tsv in sorted(bench.rglob("*.tsv")):
        name = str(tsv)  # per region-year, per region (terrain/demo/r0c0.tsv) or whole-region
        if "demo-train" in name or not any(k in name for k in (region_year, "/demo.", "/demo/")):
            continue
        row = next(csv.DictReader(tsv.open(), delimiter="\t"))
        stage = stage_of(tsv, bench)
        s, rss, n = out.get(stage, (0.0, 0.0, 0))
        out[stage] = (max(s, float(row["s"])), max(rss, float(row["max_rss"])), n + 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000])
    ap.add_argument("--keep", type=Path, default=None, help="parent folder of the runs")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="region-scale-"))
    results: dict[int, dict[str, tuple[float, float, int]]] = {}
    for n in args.sizes:
        wd = root / f"n{n}"
        (wd / "config").mkdir(parents=True, exist_ok=True)
        (wd / "config/config.yaml").write_text(yaml.safe_dump(config(n)))
        t0 = time.time()
        run_workflow(
            wd,
            "outlines/demo_2021.gpkg",
            "results/eval/demo_2021/outlines.json",
            log=wd / "snakemake.log",
        )
        print(f"{n} x {n} px: {time.time() - t0:.0f} s in {wd}", flush=True)
        results[n] = peaks(wd, "demo_2021")
    base = args.sizes[0]
    stages = sorted({s for r in results.values() for s in r})
    head = " | ".join(f"{n} px: s / MB" for n in args.sizes)
    print(f"\n| stage (jobs at {args.sizes[-1]} px) | {head} | peak / {base} px |")
    print("|---|" + "---|" * (len(args.sizes) + 1))
    for st in stages:
        cells = []
        for n in args.sizes:
            s, rss, _ = results[n].get(st, (float("nan"), float("nan"), 0))
            cells.append(f"{s:.1f} / {rss:.0f}")
        last, first = results[args.sizes[-1]].get(st), results[base].get(st)
        ratio = f"{last[1] / first[1]:.2f}" if last and first and first[1] > 0 else "-"
        jobs = last[2] if last else 0
        print(f"| {st} ({jobs}) | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main()
