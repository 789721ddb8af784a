"""Benchmark: sliding-window prediction over a region against a bare forward pass over the
unique lattice windows that cover it (same model, window, batch, threads), not a test.

The ratio is the cost of blending and of windows computed more than once (those straddling
output blocks or processing tiles). Target: <= 1.15.

    .venv/bin/python benchmarks/predict_vs_forward.py [--size 2000] [--block 1024 4096]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from glaciermap.core.grid import RegionGrid, write_raster
from glaciermap.ml.features import VALID
from glaciermap.ml.models import build_cnn
from glaciermap.ml.predict import sliding_window_predict, window_origins


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--block", type=int, nargs="*", default=[1024, 2048, 4096])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n, c = args.size, args.layers
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        g = RegionGrid.from_bounds("EPSG:32643", (0, 0, n * 10, n * 10), 10.0)
        x = np.random.default_rng(0).normal(size=(c, n, n)).astype(np.float32)
        names = [f"l{i}" for i in range(c)]
        write_raster(
            root / "f.tif",
            np.concatenate([x, np.ones((1, n, n), np.float32)]),
            g,
            [*names, VALID],
            nodata=np.nan,
        )
        model = root / "model"
        model.mkdir()
        torch.manual_seed(0)
        net = build_cnn("unet", c, base=16, depth=3).eval()
        torch.save(net.state_dict(), model / "weights.pt")
        (model / "norm.json").write_text(
            json.dumps({"layers": names, "mean": [0.0] * c, "std": [1.0] * c})
        )
        (model / "config.json").write_text(
            json.dumps({"arch": "unet", "params": {"base_channels": 16, "depth": 3}})
        )
        # the reference: every lattice window once, forward pass only
        w, o = args.window, args.overlap
        origins = [(r, q) for r in window_origins(0, n, w, o) for q in window_origins(0, n, w, o)]
        pad = np.zeros((c, n + 2 * w, n + 2 * w), np.float32)
        pad[:, w : w + n, w : w + n] = x
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(origins), args.batch):
                xb = np.stack(
                    [
                        pad[:, r + w : r + 2 * w, q + w : q + 2 * w]
                        for r, q in origins[i : i + args.batch]
                    ]
                )
                net(torch.from_numpy(xb))
        bare = time.perf_counter() - t0
        print(
            f"{n} x {n} px, {c} layers, window {w}, overlap {o}, batch {args.batch}, "
            f"threads {args.threads}: bare forward over {len(origins)} windows {bare:.1f} s"
        )
        for block in args.block:
            t0 = time.perf_counter()
            sliding_window_predict(
                root / "f.tif",
                model,
                root / f"p{block}.tif",
                window=w,
                overlap=o,
                block=block,
                batch_size=args.batch,
                device="cpu",
                threads=args.threads,
            )
            dt = time.perf_counter() - t0
            print(f"  sliding_window_predict block {block}: {dt:.1f} s, ratio {dt / bare:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
