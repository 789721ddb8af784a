#!/usr/bin/env bash
# Vendored from the team's shared test kit (shared/slurm), so CI needs nothing outside the repo.
# stop-local-cluster.sh - stop the daemons that start-local-cluster.sh started (by their pid files only),
# cancel this test cluster's jobs first, and remove the /etc/slurm symlinks it created.
#   --purge   also delete the state dir (LOCAL_SLURM_DIR, default /tmp/local-slurm)
set -euo pipefail
D="${LOCAL_SLURM_DIR:-/tmp/local-slurm}"
PURGE=0; [ "${1:-}" = "--purge" ] && PURGE=1
log() { echo "[local-slurm] $*" >&2; }
pid_of() {  # pid_of PIDFILE COMM -> prints pid if it is alive and named COMM
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null)"; [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}
stop_one() {  # stop_one PIDFILE COMM
  local pid
  if pid="$(pid_of "$1" "$2")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then log "$2 ($pid) ignored TERM, sending KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    log "stopped $2 ($pid)"
  else
    log "$2 not running (no live pid in $1)"
  fi
  rm -f "$1"
}

# cancel jobs of this cluster while the controller is still up (only if it is ours)
if pid_of "$D/run/slurmctld.pid" slurmctld >/dev/null; then
  mapfile -t ids < <(squeue -h -o %i 2>/dev/null || true)
  if ((${#ids[@]})); then
    log "cancelling jobs: ${ids[*]}"; scancel "${ids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(squeue -h -t R,CG,PD -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi
stop_one "$D/run/slurmd.pid" slurmd
stop_one "$D/run/slurmctld.pid" slurmctld
stop_one "$D/run/munged.pid" munged

if [ -f "$D/run/created-links" ]; then
  while read -r l; do
    [ -L "$l" ] && [ "$(readlink "$l")" = "$D/etc/$(basename "$l")" ] && rm -f "$l" && log "removed symlink $l"
  done <"$D/run/created-links"
  rm -f "$D/run/created-links"
fi
if ((PURGE)); then rm -rf "$D"; log "removed $D"; fi
