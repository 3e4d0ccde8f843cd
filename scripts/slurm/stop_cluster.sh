#!/usr/bin/env bash
# Stop the cluster started by start_cluster.sh.
SLURM_ROOT=${SLURM_ROOT:?}
for f in "$SLURM_ROOT/run/slurmd.pid" "$SLURM_ROOT/run/slurmctld.pid"; do
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
done
exit 0
