"""Write config/README.md: every configuration key with its type, default and meaning, from
schemas/config.schema.yaml (the one source of the keys and their defaults).

    .venv/bin/python tools/config_table.py          # rewrite config/README.md
    .venv/bin/python tools/config_table.py --check  # exit 1 if it is out of date (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "schemas/config.schema.yaml"
DEST = REPO / "config/README.md"


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    t = node.get("type", "object" if "properties" in node else "")
    text = " or ".join(t) if isinstance(t, list) else str(t)
    if text == "array" and "items" in node:
        text = f"array of {_type(node['items'])}"
    bounds = []
    for k, sym in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if k in node:
            bounds.append(f"{sym} {node[k]}")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def rows(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(key, type, default, description) of every key under ``node``, depth first."""
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        default = json.dumps(sub["default"]) if "default" in sub else ""
        desc = " ".join(str(sub.get("description", "")).split())
        yield name, _type(sub), default, desc
        yield from rows(sub, f"{name}.")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            yield from rows(extra, f"{name}.NAME.")


def table() -> str:
    schema = yaml.safe_load(SCHEMA.read_text())
    lines = [
        "# Configuration keys",
        "",
        "Generated from `schemas/config.schema.yaml` by `tools/config_table.py` (do not edit;",
        "a test checks it is current). Unknown keys are errors in every section. `NAME` stands",
        "for a name you choose (a region, a dataset, a demo world, a year).",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for key, typ, default, desc in rows(schema):
        lines.append(f"| `{key}` | {typ} | {f'`{default}`' if default else ''} | {desc} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = table()
    if args.check:
        if not DEST.exists() or DEST.read_text() != text:
            print(f"{DEST} is out of date: run .venv/bin/python tools/config_table.py")
            return 1
        return 0
    DEST.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
