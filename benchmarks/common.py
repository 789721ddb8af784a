"""Helpers for the benchmark scripts: synthetic large rasters and child-process measurement."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window


def require_gdal_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit(
            f"benchmark needs the GDAL command-line tools {missing} as reference: "
            "apt-get install gdal-bin"
        )


def smooth_field(rows: np.ndarray, cols: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic smooth pattern (compressible like real imagery), any window of it."""
    rng = np.random.default_rng(seed)
    k = rng.uniform(1 / 900, 1 / 200, size=(4, 2))
    ph = rng.uniform(0, 2 * np.pi, size=4)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    out = sum(np.sin(2 * np.pi * (k[i, 0] * r + k[i, 1] * c) + ph[i]) for i in range(4))
    return np.asarray(out)


def write_scene(
    path: Path,
    size: int,
    bands: int,
    dtype: str,
    crs: str,
    transform: Affine,
    seed: int,
    scale: float,
    offset: float,
    nodata: float | None = None,
) -> None:
    """A ``size`` x ``size`` tiled GeoTIFF written block by block (bounded memory)."""
    prof = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": bands,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "nodata": nodata,
        "BIGTIFF": "IF_SAFER",
    }
    block = 2048
    with rasterio.open(path, "w", **prof) as dst:
        for r0 in range(0, size, block):
            for c0 in range(0, size, block):
                h, w = min(block, size - r0), min(block, size - c0)
                rows, cols = np.arange(r0, r0 + h), np.arange(c0, c0 + w)
                data = np.stack(
                    [smooth_field(rows, cols, seed + b) * scale + offset for b in range(bands)]
                )
                dst.write(data.astype(dtype), window=Window(c0, r0, w, h))


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall time (s) and peak RSS (MB) of a command, measured by a small wrapper process
    (the command's ``ru_maxrss`` includes the wrapper's ~10 MB at fork time)."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t0 = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:]).returncode\n"
        "dt = time.perf_counter() - t0\n"
        "print(rc, dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    rc, dt, rss = proc.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return float(dt), int(rss)


def run_python(code: str, **kwargs: Any) -> tuple[float, int, Any]:
    """Run ``code`` in a fresh interpreter; wall time, peak RSS (VmHWM, MB) and ``result``.

    VmHWM belongs to the new program image, so the parent's memory does not leak into it
    (``ru_maxrss`` keeps the pre-exec peak of a forked child on Linux).
    """
    wrapper = (
        "import json, resource, sys, time\n"
        f"kwargs = json.loads({json.dumps(json.dumps(kwargs))})\n"
        "t0 = time.perf_counter()\n" + code + "\n"
        "dt = time.perf_counter() - t0\n"
        "rss = [int(ln.split()[1]) // 1024 for ln in open('/proc/self/status')\n"
        "       if ln.startswith('VmHWM')][0]\n"
        "res = globals().get('result')\n"
        "print(json.dumps({'seconds': dt, 'peak_rss_mb': rss, 'result': res}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["seconds"], out["peak_rss_mb"], out["result"]


def run_workflow(workdir: Path, *targets: str, log: Path | None = None) -> None:
    """``snakemake --cores 2 --rerun-incomplete TARGETS`` of this repository's Snakefile in
    ``workdir`` (a killed benchmark resumes, training from its checkpoints); output to
    ``log`` if given, else to the terminal."""
    repo = Path(__file__).resolve().parents[1]
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(repo / "Snakefile")]
    out = log.open("w") if log else None
    try:
        subprocess.run(
            [*cmd, "-d", str(workdir), "--cores", "2", "--rerun-incomplete", *targets],
            check=True,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
        )
    finally:
        if out:
            out.close()
