"""Benchmark: how much test mIoU moves with the seed, and RF against the CNN (not a test).

Runs the workflow's benchmark table with ``training: cnn: ensemble: K`` (K seeds, each scored
on the held-out test chips) on

* ``rgbn30``: the 30 m four-band, 8-bit, DEM-less stand-in for a real Landsat 7 scene
  (tests/data/rgbn30), or
* ``demo``: the synthetic demo (config/demo.yaml),

and prints per model the ensemble's and each seed's glacier IoU, background IoU and mIoU.

    .venv/bin/python benchmarks/seed_stability.py rgbn30 --seeds 3
    .venv/bin/python benchmarks/seed_stability.py demo --seeds 3 --featuresets optical_dem_sar
    .venv/bin/python benchmarks/seed_stability.py rgbn30 --cnn epochs=80 patience=16
    .venv/bin/python benchmarks/seed_stability.py rgbn30 --archs rf segnet deeplabv3plus
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from common import run_workflow  # noqa: E402


def rgbn30_config(root: Path, seed: int) -> dict:  # type: ignore[type-arg]
    from data.rgbn30.data import write_region

    info = write_region(root, seed=seed)
    return {
        "regions": {"rgbn30": info["region_config"]},
        "targets": [],
        "datasets": {"rgbn30": {"members": ["rgbn30_2002"], "tile_size": 64, "block_tiles": 2}},
        "model": {"dataset": "rgbn30", "arch": "unet", "featureset": "rgbn"},
        "inference": {"window": 128, "overlap": 32},
        "benchmark": {"archs": ["rf", "unet"], "featuresets": ["rgbn"]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("case", choices=["rgbn30", "demo"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--featuresets", nargs="*", default=None)
    ap.add_argument("--archs", nargs="*", default=None, help="models of the table (rf, unet, ...)")
    ap.add_argument("--world-seed", type=int, default=0, help="rgbn30 generator seed")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    ap.add_argument(
        "--cnn",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="training.cnn overrides to measure, e.g. epochs=80 patience=16",
    )
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix=f"seeds-{args.case}-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.case == "rgbn30":
        cfg = rgbn30_config(root, args.world_seed)
    else:
        cfg = yaml.safe_load((REPO / "config/demo.yaml").read_text())
        cfg["targets"], cfg["changes"] = [], {"pairs": []}
    cnn = cfg.setdefault("training", {}).setdefault("cnn", {})
    cnn["ensemble"] = args.seeds
    for kv in args.cnn:
        key, _, value = kv.partition("=")
        cnn[key] = yaml.safe_load(value)
    if args.featuresets:
        cfg["benchmark"]["featuresets"] = args.featuresets
    if args.archs:
        cfg["benchmark"]["archs"] = args.archs
    dataset = cfg["model"]["dataset"]
    (root / "config").mkdir(exist_ok=True)
    (root / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.time()
    run_workflow(root, f"tables/{dataset}_benchmark.md")
    print(f"\n{args.case}: {time.time() - t0:.0f} s in {root}\n")
    print((root / f"tables/{dataset}_benchmark.md").read_text())
    test_on = cfg.get("benchmark", {}).get("test_on")
    scored = root / (f"results/eval/{test_on}" if test_on else f"results/eval/{dataset}/test")
    print(f"scored on {test_on or 'the test chips of ' + dataset}")
    models = {
        f"{a}_{f}" for a in cfg["benchmark"]["archs"] for f in cfg["benchmark"]["featuresets"]
    }
    for f in sorted(p for p in scored.glob("*.json") if p.stem in models):
        m = json.loads(f.read_text())
        print(
            f"{f.stem:24s} ensemble: IoU {m['iou']:.3f} bg {m['iou_background']:.3f} "
            f"mIoU {m['miou']:.3f} (all-glacier mIoU {m['all_glacier_miou']:.3f})"
        )
        for k, s in enumerate(m.get("seeds", [])):
            print(
                f"{'':24s} seed {k}:   IoU {s['iou']:.3f} bg {s['iou_background']:.3f} "
                f"mIoU {s['miou']:.3f}"
            )
        if "seed_miou_sd" in m:
            print(f"{'':24s} seeds mIoU mean {m['seed_miou_mean']:.3f} sd {m['seed_miou_sd']:.3f}")
    for d in sorted((root / f"results/models/{dataset}").iterdir()):
        cfgj = json.loads((d / "config.json").read_text())
        print(d.name, "best epochs", cfgj.get("best_epoch"), "layers", len(cfgj["layers"]))


if __name__ == "__main__":
    main()
