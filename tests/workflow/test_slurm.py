"""The .test/ workflow through a real SLURM scheduler (a local single-node cluster).

The cluster (munged, slurmctld, slurmd; two fake GPUs as gres) is started by
tests/slurm/start-local-cluster.sh and stopped at the end, whatever happened, if this test
started it. Needs root and apt (to install slurm-wlm); skipped with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
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
                # The node advertises 4 CPUs (on 2 cores here): the jobs are short and mostly
                # start-up, so four at a time halve the dependency waves of the ingestion.
                env={**os.environ, "LOCAL_SLURM_CPUS": "4"},
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


# One region-year from its scenes to its outlines: every kind of job (CPU ingestion,
# processing tiles as group jobs, GPU training, gathering, polygonization) without the
# benchmark table, quicklooks, evaluation and the second epoch, whose jobs add sbatch waves
# only. The synthetic world (input data, not a pipeline stage) is copied from the local run.
SLURM_TARGET = "outlines/demo_2021.gpkg"


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster: None, done: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = make_workdir(tmp_path_factory.mktemp("slurm"))
    shutil.copytree(done / "resources", wd / "resources")
    snakemake(
        wd,
        SLURM_TARGET,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        # The local test cluster has no accounting database: poll with squeue, quickly.
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        "--retries",
        "0",
        "--jobs",
        "6",
        # The profile's documented grouping of processing tiles, 4 per job here.
        "--groups",
        "features_tile=tiles",
        "terrain_tile=terrain_tiles",
        "sar_backscatter_tile=sar_tiles",
        "sar_coherence_tile=sar_tiles",
        "--group-components",
        "tiles=4",
        "terrain_tiles=4",
        "sar_tiles=4",
    )
    return wd


def _job_logs(wd: Path, name: str) -> list[Path]:
    """The SLURM job logs of a rule (`rule_<name>`) or group (`group_<name>`) directory."""
    return sorted((wd / ".snakemake" / "slurm_logs" / name).rglob("*.log"))


def _job_ids(wd: Path, rule: str) -> list[str]:
    """SLURM job ids of a rule's jobs (the plugin names each job log <jobid>.log)."""
    return [p.stem for p in _job_logs(wd, f"rule_{rule}")]


def _job_info(job_id: str) -> str:
    proc = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_job_went_through_sbatch(slurm_run: Path) -> None:
    names = {p.name for p in (slurm_run / ".snakemake/slurm_logs").iterdir()}
    rules = {n.removeprefix("rule_") for n in names if n.startswith("rule_")}
    assert {
        "optical_composite_tile",
        "labels",
        "tiles",
        "train_cnn",
        "predict_tile",
        "predict",
        "outlines",
    } <= rules
    local = {  # metadata-only local rules (a grid JSON, VRTs of the tiles)
        "region_grid",
        "features",
        "optical_composite",
        "terrain",
        "sar_backscatter",
        "sar_coherence",
    }
    assert not local & rules
    # one job per processing tile (the .test regions are 2 x 2 tiles)
    assert len(_job_ids(slurm_run, "predict_tile")) == 4
    # the 8 feature tiles of two region-years as 2 group jobs of 4
    groups = _job_logs(slurm_run, "group_tiles_features_tile")
    assert len(groups) == 2
    for log in groups:  # the group job's Snakemake was given its 4 tile jobs
        m = re.search(r"--target-jobs (.*?) --allowed-rules", log.read_text())
        assert m, log
        targets = m.group(1).split()
        assert len(targets) == 4 and all(t.startswith("features_tile:") for t in targets)
    # terrain and SAR tiles (2 regions' terrain, 2 region-years' backscatter and coherence,
    # 2 x 2 tiles each) as group jobs of 4 tile jobs
    for group, rules_in, n_tiles in (
        ("terrain_tiles", {"terrain_tile"}, 8),
        ("sar_tiles", {"sar_backscatter_tile", "sar_coherence_tile"}, 16),
    ):
        logs = [
            log
            for d in (slurm_run / ".snakemake/slurm_logs").glob(f"group_{group}_*")
            for log in sorted(d.rglob("*.log"))
        ]
        targets = [
            t
            for log in logs
            for t in re.search(r"--target-jobs (.*?) --allowed-rules", log.read_text())
            .group(1)
            .split()
        ]
        assert len(logs) == n_tiles // 4 and len(targets) == n_tiles, (group, logs)
        assert {t.partition(":")[0] for t in targets} == rules_in
    jobs = _job_ids(slurm_run, "outlines")
    assert len(jobs) == 1
    for job in [*jobs, *(p.stem for p in groups)]:
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
    for job in _job_ids(slurm_run, "optical_composite_tile"):
        assert "gpu" not in _job_info(job)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_slurm_outputs_are_byte_identical_to_local_outputs(slurm_run: Path, done: Path) -> None:
    """Two runs give the same bytes in every output: the local one, which was SIGKILLed 6
    times mid-job and resumed (see the `done` fixture), and the uninterrupted SLURM run.

    Except the CNN's resume checkpoints, which name the chip store they were trained on by
    size and modification time (regenerated chips must not resume an old training).
    """
    produced = sorted(
        p.relative_to(slurm_run)
        for top in ("results", "outlines")
        for p in (slurm_run / top).rglob("*")
        if p.is_file() and not p.name.startswith("checkpoint_")
    )
    assert len(produced) > 30 and Path(SLURM_TARGET) in produced
    differ = [str(rel) for rel in produced if _sha256(slurm_run / rel) != _sha256(done / rel)]
    assert not differ, f"SLURM and local outputs differ: {differ}"


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
