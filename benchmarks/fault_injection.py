"""Benchmark: the .test workflow SIGKILLed at many random points ends as an uninterrupted run.

Runs the .test workflow once without interruption and once killed ``--kills`` times (each
time while a job runs, after a random number of finished jobs of that attempt; then
``--unlock`` and ``--rerun-incomplete``), and compares the sha256 of every file under
results/, outlines/, changes/ and tables/ (the CNN resume checkpoints excepted: they name
the chip store by size and modification time). The suite does the same with 6 fixed kills.

    .venv/bin/python benchmarks/fault_injection.py --kills 12 --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from workflow_helpers import make_workdir, run_with_kills, snakemake  # noqa: E402

TOPS = ("results", "outlines", "changes", "tables")


def digests(wd: Path) -> dict[str, str]:
    """sha256 of every output file (relative path -> hex digest)."""
    return {
        str(p.relative_to(wd)): hashlib.sha256(p.read_bytes()).hexdigest()
        for top in TOPS
        if (wd / top).exists()
        for p in sorted((wd / top).rglob("*"))
        if p.is_file() and not p.name.startswith("checkpoint_")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-jobs-between", type=int, default=9)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="faults-"))
    t0 = time.time()
    clean = make_workdir(root / "clean")
    snakemake(clean, "--cores", "2")
    t1 = time.time()
    rng = random.Random(args.seed)
    kills = [rng.randint(1, args.max_jobs_between) for _ in range(args.kills)]
    killed = make_workdir(root / "killed")
    cut = run_with_kills(killed, kills)
    t2 = time.time()
    a, b = digests(clean), digests(killed)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    print(f"uninterrupted run: {t1 - t0:.0f} s; killed run: {t2 - t1:.0f} s ({root})")
    print(f"kills: {len(cut)} of {len(kills)} landed (after {kills[: len(cut)]} finished jobs)")
    print(f"jobs cut: {', '.join(cut)}")
    print(f"outputs compared: {len(a)}; differing: {len(differ)}")
    for k in differ:
        print(f"  DIFF {k}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
