"""config/README.md is generated from the schema and kept current."""

from __future__ import annotations

import subprocess
import sys

from workflow_helpers import REPO


def test_config_table_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools/config_table.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_leaf_key_is_documented() -> None:
    sys.path.insert(0, str(REPO / "tools"))
    import yaml
    from config_table import rows

    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    undocumented = [k for k, typ, _, desc in rows(schema) if not desc and typ != "object"]
    assert not undocumented, undocumented
