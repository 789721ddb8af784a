"""The .test/ workflow through a real SLURM scheduler (a local single-node cluster).

The cluster (munged, slurmctld, slurmd; two fake GPUs as gres) is started by
tests/slurm/start-local-cluster.sh and stopped at the end, whatever happened, if this test
started it. Needs root and apt (to install slurm-wlm); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from workflow_helpers import REPO, make_workdir, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]
SLURM_DIR = REPO / "tests" / "slurm"


def _cluster_up() -> bool:
    if not shutil.which("scontrol"):
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return "UP" in ping.stdout


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("starting the local SLURM cluster needs root (daemons, mknod, apt)")
    if not (shutil.which("slurmctld") or shutil.which("apt-get")):
        pytest.skip("SLURM is not installed and apt-get is not available to install it")
    started_here = not _cluster_up()
    try:
        if started_here:
            proc = subprocess.run(
                ["bash", str(SLURM_DIR / "start-local-cluster.sh")],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
        yield
    finally:
        if started_here:
            subprocess.run(
                ["bash", str(SLURM_DIR / "stop-local-cluster.sh")],
                capture_output=True,
                text=True,
                timeout=120,
            )


# The chain of one region-year, from the synthetic world to the scored outlines: every kind
# of job (CPU ingestion, processing tiles, GPU training, gathering, polygonization) without
# the benchmark table, quicklooks and the second epoch, whose jobs add sbatch waves only.
SLURM_TARGETS = ["outlines/demo_2021.gpkg", "results/eval/demo_2021/outlines.json"]


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = make_workdir(tmp_path_factory.mktemp("slurm"))
    snakemake(
        wd,
        *SLURM_TARGETS,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        # The local test cluster has no accounting database: poll with squeue, quickly.
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--slurm-keep-successful-logs",
        "--retries",
        "0",
        "--jobs",
        "4",
    )
    return wd


def _job_ids(wd: Path, rule: str) -> list[str]:
    """SLURM job ids of a rule's jobs (the plugin names each job log <jobid>.log)."""
    logs = (wd / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log")
    return sorted(p.stem for p in logs)


def _job_info(job_id: str) -> str:
    proc = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_job_went_through_sbatch(slurm_run: Path) -> None:
    rules = {p.name.removeprefix("rule_") for p in (slurm_run / ".snakemake/slurm_logs").iterdir()}
    assert {
        "demo_world",
        "optical_composite",
        "terrain",
        "train_cnn",
        "features_tile",
        "predict_tile",
        "predict",
        "outlines",
    } <= rules
    # one job per processing tile (the .test regions are 2 x 2 tiles)
    assert len(_job_ids(slurm_run, "predict_tile")) == 4
    jobs = _job_ids(slurm_run, "outlines")
    assert len(jobs) == 1
    for job in jobs:
        assert "JobState=COMPLETED" in _job_info(job)


def test_training_asked_for_and_saw_a_gpu(slurm_run: Path) -> None:
    train_jobs = _job_ids(slurm_run, "train_cnn")
    assert train_jobs
    for job in train_jobs:
        assert re.search(r"TresPerJob=gres:gpu:1\b", _job_info(job))
    train_log = (slurm_run / "logs/train/demo/unet_optical_dem_sar.log").read_text()
    m = re.search(r"CUDA_VISIBLE_DEVICES=(\S+?)\)", train_log)
    assert m and m.group(1) in {"0", "1"}, train_log[:1000]  # SLURM bound a GPU to the job
    # CPU steps ask for no GPU.
    for job in _job_ids(slurm_run, "optical_composite"):
        assert "gpu" not in _job_info(job)


def test_slurm_outputs_equal_local_outputs(slurm_run: Path, done: Path) -> None:
    rel = "results/eval/demo_2021/outlines.json"
    a = json.loads((slurm_run / rel).read_text())
    b = json.loads((done / rel).read_text())
    assert [a[k] for k in ("tp", "fp", "fn", "tn")] == [b[k] for k in ("tp", "fp", "fn", "tn")]
    rel = "results/probability/demo_2021/unet_optical_dem_sar.tif"
    with rasterio.open(slurm_run / rel) as x, rasterio.open(done / rel) as y:
        assert np.allclose(x.read(), y.read(), atol=1e-6, equal_nan=True)


SHARED_SLURM = REPO.parent / "shared" / "slurm"
VENDOR_HEADER = "# Vendored from the team's shared test kit"


@pytest.mark.parametrize("script", ["start-local-cluster.sh", "stop-local-cluster.sh"])
def test_vendored_cluster_scripts_are_in_step_with_the_shared_kit(script: str) -> None:
    """tests/slurm/ is a copy of ../shared/slurm/ (which changes); CI runs the copy."""
    if not (SHARED_SLURM / script).is_file():
        pytest.skip(f"the shared test kit is not at {SHARED_SLURM} (only on the dev machine)")
    ours = [
        line
        for line in (SLURM_DIR / script).read_text().splitlines()
        if not line.startswith(VENDOR_HEADER)
    ]
    theirs = (SHARED_SLURM / script).read_text().splitlines()
    assert ours == theirs, f"tests/slurm/{script} differs from {SHARED_SLURM / script}: copy again"
