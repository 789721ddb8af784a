"""The conda environments pin the same versions as the pip constraints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements/constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.lower().replace("_", "-")] = version
    return pins


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_match_constraints(env: Path) -> None:
    spec = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    pins = _constraints()
    checked = 0
    for req in pip:
        if req.startswith("-e"):
            continue
        name, version = req.split("==")
        assert pins.get(name.lower()) == version, (
            f"{env.name}: {req} vs constraints {pins.get(name)}"
        )
        checked += 1
    assert checked >= 10
    assert "torch==2.13.0" in pip or "ml" not in env.stem


def test_every_rule_has_an_env_log_benchmark_and_resources() -> None:
    import re

    for smk in (REPO / "rules").glob("*.smk"):
        text = smk.read_text()
        for block in re.split(r"\n(?=\s*rule \w+:)", text):
            m = re.search(r"rule (\w+):", block)
            if not m:
                continue
            for directive in ("conda:", "log:", "benchmark:", "resources:", "threads:"):
                assert directive in block, f"{smk.name}: rule {m.group(1)} lacks {directive}"
