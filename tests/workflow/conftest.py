"""The finished local run of the .test/ workflow, shared by every workflow test module."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_helpers import make_workdir, snakemake


@pytest.fixture(scope="session")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished local run of the .test/ workflow (`snakemake --cores 2`, target `all`).

    One run for the whole session: the end-to-end checks and the SLURM comparison read it,
    and tests that touch it (rerun planning) only dry-run and restore what they change.
    """
    wd = make_workdir(tmp_path_factory.mktemp("wf"))
    snakemake(wd, "--cores", "2")
    return wd
