#!/usr/bin/env bash
# A Slurm cluster of N compute hosts on this machine: each node is a network namespace with its own address,
# host name and slurmd, joined by a bridge; slurmctld and a private munged run in the root namespace.
# Needs root (network and mount namespaces). Used by CI and for the multi-node tests (see README.md, Tests):
#
#   export SLURM_ROOT=/tmp/agpt-mn; bash scripts/slurm/multinode_cluster.sh start
#   export SLURM_CONF=$SLURM_ROOT/conf/slurm.conf PATH=$PWD/scripts/slurm/shims:$PATH
#   ...; bash scripts/slurm/multinode_cluster.sh stop
#
# Commands: start | stop | status | power-cut I | power-on I | link-down I | link-up I   (I = node 1..N).
# Knobs: SLURM_ROOT (state folder, required), NODES (2), NET (first three octets, 10.77.0), NAME (prefix of the
# namespaces, bridge and links, agmn), CTLD_PORT (6827: a one-node cluster on 6817 can run beside it).
# Only addresses of the namespaces made here (NET.1 = bridge and controller, NET.(i+1) = node i) are used.
# start is idempotent: a healthy cluster is left as is, a broken one is stopped and started again.
# stop ends only the processes it started (recorded PIDs, checked against their command name) and whatever
# runs inside its own namespaces, deletes the namespaces and the bridge, and fails if anything is left.
set -euo pipefail

SLURM_ROOT=${SLURM_ROOT:?set SLURM_ROOT to a folder for the cluster state}
SLURM_ROOT=$(mkdir -p "$SLURM_ROOT" && cd "$SLURM_ROOT" && pwd)
STATE=$SLURM_ROOT/run/cluster.env
CONF=$SLURM_ROOT/conf/slurm.conf
export SLURM_CONF=$CONF

die() {
  echo "multinode_cluster: error: $*" >&2
  exit 2
}

# The layout: from the recorded state when a cluster exists, else from the knobs.
if [ -f "$STATE" ]; then
  # shellcheck disable=SC1090
  . "$STATE"
else
  NODES=${NODES:-2}
  NET=${NET:-10.77.0}
  NAME=${NAME:-agmn}
  CTLD_PORT=${CTLD_PORT:-6827}
fi
[[ $NODES =~ ^[0-9]+$ ]] && [ "$NODES" -ge 1 ] && [ "$NODES" -le 200 ] || die "NODES=$NODES: need 1..200"
[[ $NET =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "NET=$NET: need three octets such as 10.77.0"
[[ $NAME =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "NAME=$NAME: need 1-8 lower-case letters/digits (interface names are short)"
BRIDGE=$NAME-br
CTL_ADDR=$NET.1
ns() { echo "$NAME-n$1"; }
veth() { echo "$NAME-v$1"; }
node_addr() { echo "$NET.$(($1 + 1))"; }

# ------------------------------------------------------------------------------------------ process checks

# PID from a pid file if that process is alive and runs the expected program, else nothing.
checked_pid() {
  local file=$1 comm=$2 pid
  [ -f "$file" ] || return 0
  pid=$(tr -dc 0-9 < "$file")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && echo "$pid"
  return 0
}

ns_exists() { [ -e "/run/netns/$1" ]; }
ns_pids() { ! ns_exists "$1" || ip netns pids "$1" 2>/dev/null || true; }

# TERM, up to $2 s for them to go, then KILL.
end_pids() {
  local pids=$1 wait_s=$2 alive i p
  [ -n "${pids// /}" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < wait_s * 10; i++)); do
    alive=""
    for p in $pids; do [ -d "/proc/$p" ] && alive="$alive $p"; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $alive 2>/dev/null || true
  sleep 0.2
}

healthy() {
  [ -f "$STATE" ] || return 1
  [ -n "$(checked_pid "$SLURM_ROOT/munge/munged.pid" munged)" ] || return 1
  [ -n "$(checked_pid "$SLURM_ROOT/run/slurmctld.pid" slurmctld)" ] || return 1
  local i
  for ((i = 1; i <= NODES; i++)); do
    ns_exists "$(ns "$i")" || return 1
    [ -n "$(checked_pid "$SLURM_ROOT/run/slurmd-n$i.pid" slurmd)" ] || return 1
  done
  [ "$(sinfo -h -N -o %T 2>/dev/null | grep -cE '^(idle|mixed|allocated|completing)')" -ge "$NODES" ]
}

# Up to $1 s for every node to be usable.
wait_idle() {
  local limit=$1 i
  for ((i = 0; i < limit * 5; i++)); do
    [ "$(sinfo -h -N -o %T 2>/dev/null | grep -cE '^(idle|mixed|allocated|completing)')" -ge "$NODES" ] && return 0
    sleep 0.2
  done
  echo "multinode_cluster: nodes not idle after ${limit}s: $(sinfo -h -N -o '%N=%T' 2>&1 | tr '\n' ' ')" >&2
  echo "  logs: $SLURM_ROOT/log" >&2
  return 1
}

# ------------------------------------------------------------------------------------------------- start

write_conf() {
  local ncpu mem i
  ncpu=$(nproc)
  mem=$(($(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 / (NODES + 1)))
  {
    echo "127.0.0.1 localhost"
    echo "$CTL_ADDR ctl"
    for ((i = 1; i <= NODES; i++)); do echo "$(node_addr "$i") n$i"; done
  } > "$SLURM_ROOT/conf/hosts"
  cat > "$CONF" <<CONF
ClusterName=$NAME
SlurmctldHost=ctl($CTL_ADDR)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# A private munged; a short credential lifetime: a requeued job may start cred_expire + 1 s after the requeue.
AuthInfo=socket=$SLURM_ROOT/munge/munge.socket,cred_expire=10
StateSaveLocation=$SLURM_ROOT/state
SlurmdSpoolDir=$SLURM_ROOT/spool/%n
SlurmctldPidFile=$SLURM_ROOT/run/slurmctld.pid
SlurmdPidFile=$SLURM_ROOT/run/slurmd-%n.pid
SlurmctldLogFile=$SLURM_ROOT/log/slurmctld.log
SlurmdLogFile=$SLURM_ROOT/log/slurmd-%n.log
SlurmctldPort=$CTLD_PORT
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# The backfill pass starts requeued jobs: every 5 s instead of 30.
SchedulerParameters=bf_interval=5
MpiDefault=none
# A node that was down (power cut, link lost) rejoins as soon as its slurmd registers again.
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_ROOT/log/jobcomp.log
SlurmctldTimeout=30
# A silent node is declared DOWN (and its jobs requeued) after about 30-40 s instead of minutes.
SlurmdTimeout=20
InactiveLimit=0
MinJobAge=600
KillWait=5
NodeName=n[1-$NODES] NodeHostname=n[1-$NODES] CPUs=$ncpu RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=n[1-$NODES] Default=YES MaxTime=INFINITE State=UP
CONF
  # NodeAddr per node: the root namespace (slurmctld, clients) has no names for the nodes.
  local addrs=""
  for ((i = 1; i <= NODES; i++)); do addrs="$addrs${addrs:+,}$(node_addr "$i")"; done
  sed -i "s|^NodeName=.*|& NodeAddr=$addrs|" "$CONF"
}

start_munge() {
  local dir=$SLURM_ROOT/munge
  mkdir -p "$dir"
  chown munge:munge "$dir"
  chmod 0755 "$dir"  # munged: the socket folder must be searchable by every client
  [ -f "$dir/munge.key" ] || runuser -u munge -- mungekey --create --keyfile="$dir/munge.key" >/dev/null
  runuser -u munge -- munged --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
      --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
}

setup_network() {
  local i
  ip link add "$BRIDGE" type bridge
  ip addr add "$CTL_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for ((i = 1; i <= NODES; i++)); do
    ip netns add "$(ns "$i")"
    ip link add "$(veth "$i")" type veth peer name "$NAME-p$i"
    ip link set "$(veth "$i")" master "$BRIDGE" up
    ip link set "$NAME-p$i" netns "$(ns "$i")"
    ip -n "$(ns "$i")" link set "$NAME-p$i" name eth0
    ip -n "$(ns "$i")" addr add "$(node_addr "$i")/24" dev eth0
    ip -n "$(ns "$i")" link set eth0 up
    ip -n "$(ns "$i")" link set lo up
  done
}

# slurmd of node $1 inside its namespace. Not `ip netns exec`: that remounts /sys, the host's cgroup mounts
# vanish and slurmd fails to start. A private mount + UTS namespace gives the node its name and a hosts file
# (inherited by its jobs) without touching the machine's /etc/hosts; nsenter then joins the node's network.
start_slurmd() {
  local i=$1
  mkdir -p "$SLURM_ROOT/spool/n$i"
  unshare --mount --uts sh -c "mount --bind '$SLURM_ROOT/conf/hosts' /etc/hosts && hostname n$i && \
      exec nsenter --net=/run/netns/$(ns "$i") slurmd -N n$i -f '$CONF'"
}

cmd_start() {
  if healthy; then
    echo "multinode_cluster: already running ($NODES nodes, $SLURM_ROOT)"
    return 0
  fi
  [ -f "$STATE" ] && { echo "multinode_cluster: a broken cluster is recorded; stopping it first" >&2; cmd_stop; }
  [ "$(id -u)" = 0 ] || die "needs root (network and mount namespaces)"
  local tool
  for tool in slurmctld slurmd sinfo munged mungekey ip unshare nsenter runuser; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install slurmd slurmctld slurm-client munge iproute2)"
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && die "a link named $BRIDGE exists but is not recorded in $STATE; choose another NAME"
  for ((i = 1; i <= NODES; i++)); do
    ns_exists "$(ns "$i")" && die "namespace $(ns "$i") exists but is not recorded in $STATE; choose another NAME"
  done
  ip -4 addr show | grep -q "inet $CTL_ADDR/" && die "address $CTL_ADDR is in use on this machine; choose another NET"
  mkdir -p "$SLURM_ROOT"/{conf,state,spool,log,run}
  chmod 0755 "$SLURM_ROOT"  # munged (user munge) must reach its folder
  runuser -u munge -- test -x "$SLURM_ROOT" ||
    die "user munge cannot reach $SLURM_ROOT (a parent folder is not searchable); use a folder such as /tmp/agpt-mn"
  # Recorded first, so that stop can clean up after a start that fails half-way.
  printf 'NODES=%s\nNET=%s\nNAME=%s\nCTLD_PORT=%s\n' "$NODES" "$NET" "$NAME" "$CTLD_PORT" > "$STATE"
  write_conf
  setup_network
  start_munge
  unshare --uts sh -c "hostname ctl && exec slurmctld -c -f '$CONF'"
  for ((i = 1; i <= NODES; i++)); do start_slurmd "$i"; done
  if ! wait_idle 30; then
    cmd_stop || true
    return 1
  fi
  echo "multinode_cluster: $NODES nodes idle (n1..n$NODES at $(node_addr 1)..$(node_addr "$NODES"), controller $CTL_ADDR:$CTLD_PORT)"
  echo "  export SLURM_CONF=$CONF"
}

# -------------------------------------------------------------------------------------------------- stop

cmd_stop() {
  [ -f "$STATE" ] || { echo "multinode_cluster: nothing recorded in $SLURM_ROOT"; return 0; }
  local pids i p left=""
  # Jobs and slurmd inside our namespaces, then the daemons we recorded.
  pids=""
  for ((i = 1; i <= NODES; i++)); do
    pids="$pids $(checked_pid "$SLURM_ROOT/run/slurmd-n$i.pid" slurmd) $(ns_pids "$(ns "$i")")"
  done
  end_pids "$pids" 5
  p=$(checked_pid "$SLURM_ROOT/run/slurmctld.pid" slurmctld)
  # slurmctld's helper (slurmscriptd) is its child.
  end_pids "$p ${p:+$(pgrep -P "$p" || true)}" 5
  end_pids "$(checked_pid "$SLURM_ROOT/munge/munged.pid" munged)" 5
  for ((i = 1; i <= NODES; i++)); do
    # Deleting one end of a veth pair deletes both (a namespace's deletion would, but only later).
    ip link show "$(veth "$i")" >/dev/null 2>&1 && ip link del "$(veth "$i")"
    ns_exists "$(ns "$i")" && ip netns del "$(ns "$i")"
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  # What must be gone.
  for ((i = 1; i <= NODES; i++)); do
    ns_exists "$(ns "$i")" && left="$left namespace $(ns "$i");"
    ip link show "$(veth "$i")" >/dev/null 2>&1 && left="$left link $(veth "$i");"
    p=$(checked_pid "$SLURM_ROOT/run/slurmd-n$i.pid" slurmd)
    [ -n "$p" ] && left="$left slurmd pid $p;"
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && left="$left bridge $BRIDGE;"
  p=$(checked_pid "$SLURM_ROOT/run/slurmctld.pid" slurmctld)
  [ -n "$p" ] && left="$left slurmctld pid $p;"
  p=$(checked_pid "$SLURM_ROOT/munge/munged.pid" munged)
  [ -n "$p" ] && left="$left munged pid $p;"
  if [ -n "$left" ]; then
    echo "multinode_cluster: stop left:$left" >&2
    return 1
  fi
  rm -f "$STATE"
  echo "multinode_cluster: stopped; nothing left ($SLURM_ROOT keeps the logs)"
}

# ------------------------------------------------------------------------------------- faults for tests

node_arg() {
  [[ ${1:-} =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$NODES" ] || die "node must be 1..$NODES, got '${1:-}'"
  [ -f "$STATE" ] || die "no cluster recorded in $SLURM_ROOT"
}

cmd_status() {
  [ -f "$STATE" ] || { echo "not running (nothing recorded in $SLURM_ROOT)"; return 3; }
  local i
  echo "controller $CTL_ADDR:$CTLD_PORT pid $(checked_pid "$SLURM_ROOT/run/slurmctld.pid" slurmctld)"
  for ((i = 1; i <= NODES; i++)); do
    echo "n$i $(node_addr "$i") namespace $(ns "$i") slurmd pid $(checked_pid "$SLURM_ROOT/run/slurmd-n$i.pid" slurmd)" \
         "processes $(ns_pids "$(ns "$i")" | wc -l)"
  done
  sinfo -N -o '%N %T' 2>&1 || true
  healthy
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  # Every process of the node at once (slurmd, slurmstepd, the job's tasks), as a power cut would.
  power-cut) node_arg "${2:-}"; pids=$(ns_pids "$(ns "$2")"); [ -z "$pids" ] || kill -KILL $pids; echo "n$2: killed ${pids//$'\n'/ }" ;;
  power-on) node_arg "${2:-}"; [ -n "$(checked_pid "$SLURM_ROOT/run/slurmd-n$2.pid" slurmd)" ] || start_slurmd "$2"; echo "n$2: slurmd started" ;;
  link-down) node_arg "${2:-}"; ip link set "$(veth "$2")" down; echo "n$2: link down" ;;
  link-up) node_arg "${2:-}"; ip link set "$(veth "$2")" up; echo "n$2: link up" ;;
  *) die "usage: $0 start|stop|status|power-cut I|power-on I|link-down I|link-up I" ;;
esac
