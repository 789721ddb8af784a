"""Command line: ``glaciermap demo`` generates the demo world, ``glaciermap summary`` prints
where a region/year's outlines and metrics are."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from glaciermap import __version__
from glaciermap.core.errors import ConfigError, GlacierMapError, MissingInputError
from glaciermap.core.logs import configure


def _load_config(path: str) -> dict[str, object]:
    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"{p}: config file not found; pass --config PATH")
    try:
        cfg = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{p}: not valid YAML{where} ({what}); fix the file") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{p}: not a YAML mapping of config sections; fix the file")
    return cfg


def cmd_demo(args: argparse.Namespace) -> int:
    """``glaciermap demo``: generate the demo world of ``--config`` (into ``--out`` if given)."""
    from glaciermap.synthetic.demo import generate_demo

    files = generate_demo(_load_config(args.config), args.out)
    print(f"demo world: {len(files)} files written")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """``glaciermap summary``: print a region/year's outlines (glacier count, total area) and,
    if it has been evaluated, its metrics."""
    ry = args.region_year
    outlines = Path(f"outlines/{ry}.gpkg")
    metrics = Path(f"results/eval/{ry}/outlines.json")
    if not outlines.exists():
        raise MissingInputError(
            f"{outlines}: not found; run `snakemake --cores all {outlines}` (in the workflow's "
            "folder)"
        )
    import geopandas as gpd

    from glaciermap.core.io import outline_layer

    gdf = gpd.read_file(outlines, layer=outline_layer(outlines))
    print(f"outlines: {outlines}  ({len(gdf)} glaciers, {gdf['area_km2'].sum():.2f} km2)")
    if metrics.exists():
        m = json.loads(metrics.read_text())
        keys = ("accuracy", "precision", "recall", "f1", "iou", "iou_background", "miou")
        print(f"metrics:  {metrics}  " + "  ".join(f"{k}={m[k]:.3f}" for k in keys))
        print(f"          (everything-is-glacier would score mIoU {m['all_glacier_miou']:.3f})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status
    (1 after a :class:`GlacierMapError`, whose message goes to stderr)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["acquire"]:  # its own parser: search / download subcommands
        from glaciermap.ingest.stac import main_acquire

        return main_acquire(args_list[1:])
    parser = argparse.ArgumentParser(prog="glaciermap", description=__doc__)
    parser.add_argument("--version", action="version", version=f"glaciermap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="generate the synthetic demo world")
    d.add_argument("--config", default="config/demo.yaml")
    d.add_argument("--out", default=None, help="output folder (default: each region's data_dir)")
    d.set_defaults(func=cmd_demo)
    s = sub.add_parser("summary", help="print where outlines and metrics of REGION_YEAR are")
    s.add_argument("region_year")
    s.set_defaults(func=cmd_summary)
    sub.add_parser(
        "acquire",
        help="STAC search / download of inputs (glaciermap acquire search|download --help)",
        add_help=False,
    )
    args = parser.parse_args(args_list)
    configure()
    try:
        return int(args.func(args))
    except GlacierMapError as exc:
        print(f"glaciermap: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
