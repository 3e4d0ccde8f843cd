#!/usr/bin/env bash
# Start a one-node Slurm cluster (munged + slurmctld + slurmd) with all state under $SLURM_ROOT.
# Used by CI and by developers who want to run the Slurm tests locally (as root):
#   export SLURM_ROOT=$(mktemp -d); bash scripts/slurm/start_cluster.sh
#   export SLURM_CONF=$SLURM_ROOT/conf/slurm.conf PATH=$PWD/scripts/slurm/shims:$PATH
set -euo pipefail
SLURM_ROOT=${SLURM_ROOT:?set SLURM_ROOT to an empty folder}
HOST=$(hostname -s)
NCPU=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 2048 ))
mkdir -p "$SLURM_ROOT"/{conf,state,spool,log,run}
export SLURM_CONF="$SLURM_ROOT/conf/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=ci
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$SLURM_ROOT/state
SlurmdSpoolDir=$SLURM_ROOT/spool
SlurmctldPidFile=$SLURM_ROOT/run/slurmctld.pid
SlurmdPidFile=$SLURM_ROOT/run/slurmd.pid
SlurmctldLogFile=$SLURM_ROOT/log/slurmctld.log
SlurmdLogFile=$SLURM_ROOT/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_ROOT/log/jobcomp.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=600
KillWait=5
NodeName=$HOST CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
# munged must run as user munge, with its runtime folder owned by munge.
mkdir -p /run/munge && chown munge:munge /run/munge
pgrep -x munged >/dev/null || runuser -u munge -- munged
slurmctld -c -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 60); do
  sinfo -h -o %T 2>/dev/null | grep -q idle && exit 0
  sleep 0.5
done
echo "slurm did not become idle; see $SLURM_ROOT/log" >&2
exit 1
