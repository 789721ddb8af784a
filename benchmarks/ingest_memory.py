"""Benchmark: peak memory of each ingestion step does not grow with the scene size.

Every step ingests scenes of growing size onto the same 20 x 20 km region grid (UTM 43N,
10 m, 2000 x 2000 pixels) in a fresh process and prints its wall time and peak RSS (VmHWM):

- optical: ``build_optical_composite`` of one six-band uint16 scene at 10 m (UTM 43N);
- terrain: ``build_terrain_tile`` (mosaic, slope, aspect) of one float32 DEM at 1 arc-second
  (EPSG:4326, as Copernicus GLO-30 tiles);
- SAR backscatter: ``build_backscatter`` (temporal median) of VV and VH dates (``--dates``,
  3 by default), float32 EPSG:4326 at 0.0002 degrees (about 20 m; 10980 pixels span 2.2
  degrees, a Sentinel-1 frame);
- SAR coherence: ``build_coherence`` (temporal mean) of coherence pairs on the same scenes.

Scene sizes default to 2000, 6000 and 10980 pixels a side. The SAR dates are links to one
scene file each (GDAL opens, reads and caches every link as its own dataset, so the work is
that of distinct files). Bounded ingestion reads only the part of a scene under the region and
reduces SAR stacks window by window, so the peak stays flat as the scenes grow; it depends on
the region grid, the number of dates and GDAL's block cache (``GDAL_CACHEMAX``, 5 % of RAM by
default), not on the scene size.

    .venv/bin/python benchmarks/ingest_memory.py [--sizes 2000 6000 10980] [--dates 3]
        [--steps optical terrain backscatter coherence]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from affine import Affine
from common import run_python, write_scene

from glaciermap.core.grid import RegionGrid

STEPS = ("optical", "terrain", "backscatter", "coherence")
SAR_PX = 0.0002  # degrees
DEM_PX = 1 / 3600  # degrees: 1 arc-second
NW = (73.85, 36.17)  # north-west corner (lon, lat) of the SAR and DEM scenes


def acquisition_dates(n: int) -> list[str]:
    """``n`` dates 12 days apart (a Sentinel-1 repeat cycle), from 2021-08-06."""
    first = dt.date(2021, 8, 6)
    return [(first + dt.timedelta(days=12 * i)).strftime("%Y%m%d") for i in range(n)]


def optical_inputs(d: Path, size: int, n_dates: int) -> dict[str, Any]:
    scene = d / f"opt_scene_{size}.tif"
    if not scene.exists():
        tr = Affine(10, 0, 399960, 0, -10, 4000020)
        write_scene(scene, size, 6, "uint16", "EPSG:32643", tr, 11, 700, 4000, nodata=0)
    sidecar = d / f"opt_scene_{size}.tif.bands.yaml"
    names = ["blue", "green", "red", "nir", "swir1", "swir2"]
    sidecar.write_text(
        yaml.safe_dump(
            {
                "date": "2021-08-18",
                "sensor": "benchmark",
                "bands": {n: i + 1 for i, n in enumerate(names)},
            }
        )
    )
    return {"files": [str(scene), str(sidecar)], "mb": size * size * 6 * 2 / 1e6}


def terrain_inputs(d: Path, size: int, n_dates: int) -> dict[str, Any]:
    dem = d / f"dem_{size}.tif"
    if not dem.exists():
        tr = Affine(DEM_PX, 0, NW[0], 0, -DEM_PX, NW[1])
        write_scene(dem, size, 1, "float32", "EPSG:4326", tr, 5, 500, 4000, nodata=-32767)
    return {"files": [str(dem)], "mb": size * size * 4 / 1e6}


def _sar_scene(d: Path, size: int) -> Path:
    scene = d / f"sar_{size}.tif"
    if not scene.exists():  # values 0.1 .. 0.5: valid as linear power and as coherence
        tr = Affine(SAR_PX, 0, NW[0], 0, -SAR_PX, NW[1])
        write_scene(scene, size, 1, "float32", "EPSG:4326", tr, 3, 0.05, 0.3, nodata=float("nan"))
    return scene


def _links(d: Path, size: int, names: list[str]) -> list[str]:
    scene = _sar_scene(d, size)
    out = []
    for name in names:
        link = d / f"{size}" / name
        link.parent.mkdir(exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(scene)
        out.append(str(link))
    return out


def backscatter_inputs(d: Path, size: int, n_dates: int) -> dict[str, Any]:
    names = [
        f"S1A_IW_{day}T011520_DVP_RTC20_G_gpuned_{p}.tif"
        for day in acquisition_dates(n_dates)
        for p in ("VV", "VH")
    ]
    return {"files": _links(d, size, names), "mb": len(names) * size * size * 4 / 1e6}


def coherence_inputs(d: Path, size: int, n_dates: int) -> dict[str, Any]:
    days = acquisition_dates(n_dates)  # pairs of 12 and 24 days
    pairs = [*itertools.pairwise(days), *zip(days, days[2:], strict=False)]
    names = [f"S1AA_{a}T011520_{b}T011520_VVP012_INT40_G_corr.tif" for a, b in pairs]
    return {"files": _links(d, size, names), "mb": len(names) * size * size * 4 / 1e6}


TILE_CODE = (
    "from rasterio.windows import Window\n"
    "from glaciermap.core.grid import RegionGrid\n"
    "g = RegionGrid.load(kwargs['grid'])\n"
    "TILE = Window(0, 0, g.width, g.height)\n"
)
CODE = {
    "optical": (
        "from glaciermap.ingest.optical import build_optical_composite\n"
        "build_optical_composite(kwargs['files'], kwargs['grid'], kwargs['out'] + '.tif',\n"
        "                        threads=kwargs['threads'])\n"
    ),
    # terrain and SAR as the workflow runs them: one job per processing tile (the 20 km grid
    # is one 2048 px tile at 10 m)
    "terrain": TILE_CODE
    + (
        "from glaciermap.ingest.terrain import build_terrain_tile\n"
        "o = kwargs['out']\n"
        "build_terrain_tile(kwargs['files'], kwargs['grid'], o + '_dem.tif', o + '_slope.tif',\n"
        "                   o + '_aspect.tif', TILE, threads=kwargs['threads'])\n"
    ),
    "backscatter": TILE_CODE
    + (
        "from glaciermap.ingest.sar import build_backscatter\n"
        "build_backscatter(kwargs['files'], kwargs['grid'], kwargs['out'] + '.tif',\n"
        "                  threads=kwargs['threads'], reducer='median', tile=TILE)\n"
    ),
    "coherence": TILE_CODE
    + (
        "from glaciermap.ingest.sar import build_coherence\n"
        "build_coherence(kwargs['files'], kwargs['grid'], kwargs['out'] + '.tif',\n"
        "                threads=kwargs['threads'], reducer='mean', tile=TILE)\n"
    ),
}
INPUTS: dict[str, Callable[[Path, int, int], dict[str, Any]]] = {
    "optical": optical_inputs,
    "terrain": terrain_inputs,
    "backscatter": backscatter_inputs,
    "coherence": coherence_inputs,
}
LABELS = {
    "optical": "optical composite, 1 scene x 6 bands uint16, 10 m UTM",
    "terrain": "terrain (mosaic + slope + aspect), 1 DEM float32, 1 arc-second",
    "backscatter": "SAR backscatter, {n} dates x VV+VH float32, median, 0.0002 deg",
    "coherence": "SAR coherence, {pairs} pairs float32, mean, 0.0002 deg",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 6000, 10980])
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    ap.add_argument("--dates", type=int, default=3, help="SAR acquisitions (at least 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="folder to keep the scenes in (reused)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    d = args.keep or Path(tmp.name)
    d.mkdir(parents=True, exist_ok=True)
    # The region: 20 x 20 km inside every scene's footprint, off the optical pixel grid by 5 m.
    x0, y0 = 399960 + 5, 4000020 - 20000 - 5
    grid = RegionGrid.from_bounds("EPSG:32643", (x0, y0, x0 + 20000, y0 + 20000), 10.0)
    grid.save(d / "grid.json")
    print(f"region grid {grid.height} x {grid.width} (10 m, {grid.crs}); {args.threads} threads")
    for step in args.steps:
        label = LABELS[step].format(n=args.dates, pairs=2 * args.dates - 3)
        print(f"\n{label}:", flush=True)
        for size in args.sizes:
            inputs = INPUTS[step](d, size, args.dates)
            t, rss, _ = run_python(
                CODE[step],
                files=inputs["files"],
                grid=str(d / "grid.json"),
                out=str(d / f"out_{step}_{size}"),
                threads=args.threads,
            )
            print(
                f"  scene {size:6d} px ({inputs['mb']:7.0f} MB of pixels): "
                f"{t:6.2f} s, peak RSS {rss:5d} MB",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
