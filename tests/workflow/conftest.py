"""The finished local run of the .test/ workflow, shared by every workflow test module."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from workflow_helpers import make_workdir, run_with_kills

FAULT_SEED = 2026  # benchmarks/fault_injection.py draws other kill points, and more of them
KILLS = 6


@pytest.fixture(scope="session")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished local run of the .test/ workflow (`snakemake --cores 2`, target `all`),
    reached through fault injection: SIGKILLed 6 times, each time while a job runs, after a
    seeded number of finished jobs, then unlocked and resumed with `--rerun-incomplete`.

    The SLURM test compares its uninterrupted run with this one byte for byte, and
    `test_nothing_changed_nothing_reruns` sees that nothing was left incomplete. One run
    for the whole session: tests that touch it (rerun planning) only dry-run and restore
    what they change.
    """
    wd = make_workdir(tmp_path_factory.mktemp("wf"))
    rng = random.Random(FAULT_SEED)
    kills = [rng.randint(2, 9) for _ in range(KILLS)]
    cut = run_with_kills(wd, kills)
    assert len(cut) == KILLS, f"the run ended before kill {len(cut) + 1} of {kills}"
    print(f"fault injection: killed while {cut} ran, after {kills} finished jobs")
    return wd
