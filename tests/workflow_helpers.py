"""Running the workflow from tests: snakemake on a copy of .test/ in a temporary folder."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def make_workdir(dest: Path) -> Path:
    """A working folder with the CI config (.test/config) and nothing else."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / ".test" / "config", dest / "config", dirs_exist_ok=True)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of a dry run (empty when nothing is to be done)."""
    proc = snakemake(workdir, "-n", "--cores", "2", *args)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    m = re.search(r"Job stats:\n(.*?)\n\s*total\s+\d+", text, re.S)
    assert m, text[-3000:]
    jobs = {}
    for line in m.group(1).splitlines()[2:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    jobs.pop("all", None)
    return jobs


def run_with_kills(workdir: Path, kills: list[int], *args: str) -> list[str]:
    """Run the workflow to the end through SIGKILLs: each attempt is killed (the whole process
    group: Snakemake and its jobs) as soon as a job starts after ``kills[i]`` jobs of that
    attempt finished, so a job is always cut mid-run; then ``--unlock`` (a killed Snakemake
    leaves its lock) and the next attempt with ``--rerun-incomplete``. The last attempt runs
    to completion. Returns, per kill, the job that was running when it came (for messages)."""
    import os
    import signal

    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    run = [*cmd, "--cores", "2", "--rerun-incomplete", *args]
    cut: list[str] = []
    for k in kills:
        proc = subprocess.Popen(
            run,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert proc.stdout is not None
        finished, victim = 0, ""
        for line in proc.stdout:
            if line.startswith("Finished jobid"):
                finished += 1
            elif finished >= k and re.match(r"(local)?rule \w+:", line):
                victim = line.split()[-1].rstrip(":")
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.stdout.close()
        proc.wait()
        if not victim:  # the run ended before the kill point
            assert proc.returncode == 0, f"{' '.join(run)} failed before its kill point"
            return cut
        cut.append(victim)
        subprocess.run([*cmd, "--unlock"], cwd=workdir, capture_output=True, check=True)
    snakemake(workdir, *run[len(cmd) :])
    return cut
