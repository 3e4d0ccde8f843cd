# Shared by the sbatch scripts in slurm/ (sourced, not run). Keeps every script thin: find the repository,
# describe the job, map Slurm's variables to the standard rank variables, and launch one task per GPU.
#
# Environment knobs (all optional; sbatch exports your environment to the job by default):
#   ACTIONGPT_ROOT  repository root (default: the submit directory; the scripts look for this file there)
#   PYTHON          interpreter (default: python3 on PATH; activate your venv before sbatch)
#   RUNS_ROOT       parent of run directories (default: runs); RUN_DIR overrides the whole path
#   CONFIG          config file(s) replacing the script's default (space-separated)
#   SRUN_EXTRA      extra srun options, e.g. "--gpu-bind=closest"

agpt_die() {
  echo "[actiongpt] error: $*" >&2
  exit 2
}

# The repository holding launch/ and configs/ (the script that sourced this file found it already).
agpt_find_root() {
  ACTIONGPT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
}

# Split the script's arguments into config files (-c/--config FILE), other flags (--flag or --flag=value)
# and key=value overrides, so that user config files layer over the script's default and user overrides
# come last (they win).
agpt_split_args() {
  AGPT_CFG=()
  AGPT_FLAGS=()
  AGPT_OVR=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -c|--config) [ $# -ge 2 ] || agpt_die "$1 needs a file"; AGPT_CFG+=(-c "$2"); shift 2 ;;
      --config=*) AGPT_CFG+=(-c "${1#--config=}"); shift ;;
      -*) AGPT_FLAGS+=("$1"); shift ;;  # command flags; give values as --flag=value
      *) AGPT_OVR+=("$1"); shift ;;
    esac
  done
}

# -c options for the default config file(s): the script's own (under the repository), or $CONFIG
# (space-separated; relative paths are taken from the working directory, else from the repository).
agpt_default_cfg() {
  local f files
  AGPT_DEFAULT_CFG=()
  if [ -n "${CONFIG:-}" ]; then
    files=$CONFIG
  else
    files="$ACTIONGPT_ROOT/$1"
  fi
  for f in $files; do
    case "$f" in /*) ;; *) [ -f "$f" ] || f="$ACTIONGPT_ROOT/$f" ;; esac
    [ -f "$f" ] || agpt_die "config file $f does not exist"
    AGPT_DEFAULT_CFG+=(-c "$f")
  done
}

# Job-wide set-up: repository on PYTHONPATH, rendezvous address and port, banner.
agpt_setup() {
  agpt_find_root
  PYTHON=$(command -v "${PYTHON:-python3}") || agpt_die "no Python interpreter ${PYTHON:-python3} on PATH"
  export ACTIONGPT_ROOT PYTHON
  export PYTHONPATH="$ACTIONGPT_ROOT${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1
  # Slurm >= 22.05: srun no longer inherits --cpus-per-task from the batch step unless told so.
  if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
    export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
  fi
  local nodelist=${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}
  if [ -z "${MASTER_ADDR:-}" ]; then
    MASTER_ADDR=127.0.0.1
    if [ -n "$nodelist" ]; then
      MASTER_ADDR=$(scontrol show hostnames "$nodelist" 2>/dev/null | head -n 1) || true
      # Without a working scontrol, expand the list with the parser the Python side uses.
      [ -n "$MASTER_ADDR" ] || MASTER_ADDR=$("$PYTHON" -c 'import sys; from cluster.dist_env import parse_nodelist
print(parse_nodelist(sys.argv[1])[0])' "$nodelist") || agpt_die "cannot find the first host of $nodelist"
    fi
  fi
  # The same rule as cluster.dist_env.port_from_job_id: every task derives it alone.
  MASTER_PORT=${MASTER_PORT:-$((15000 + ${SLURM_JOB_ID:-0} % 10000))}
  export MASTER_ADDR MASTER_PORT
}

# Print where things are; called once by the batch step.
agpt_banner() {
  local what=$1
  echo "[actiongpt] $(date -Is) $what: job ${SLURM_JOB_ID:-none} (${SLURM_JOB_NAME:-}) restart ${SLURM_RESTART_COUNT:-0}" \
       "nodes ${SLURM_JOB_NUM_NODES:-1} [${SLURM_JOB_NODELIST:-localhost}] tasks ${SLURM_NTASKS:-1}" \
       "master $MASTER_ADDR:$MASTER_PORT"
  echo "[actiongpt] repository $ACTIONGPT_ROOT, python $(command -v "$PYTHON" || echo "$PYTHON"), cwd $PWD"
  if [ -n "${SLURM_JOB_ID:-}" ] && command -v scontrol >/dev/null; then
    scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *StdOut=\(.*\)/[actiongpt] log \1/p' | head -n 1 || true
  fi
}

# srun one task per GPU (the allocation's task layout) with the standard rank variables mapped from Slurm's.
# DeepSpeed and init_process_group("env://") read RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT;
# srun's own SLURM_STEP_NUM_TASKS describes the step actually launched.
agpt_srun() {
  # shellcheck disable=SC2086  # SRUN_EXTRA is a list of options
  srun --kill-on-bad-exit=1 ${SRUN_EXTRA:-} bash -c '
    export RANK=$SLURM_PROCID
    export WORLD_SIZE=${SLURM_STEP_NUM_TASKS:-$SLURM_NTASKS}
    export LOCAL_RANK=$SLURM_LOCALID
    # Tasks on this node: SLURM_STEP_TASKS_PER_NODE reads like "2(x3),1" (one entry per node).
    per_node=()
    IFS=, read -ra items <<< "${SLURM_STEP_TASKS_PER_NODE:-${SLURM_TASKS_PER_NODE:-$WORLD_SIZE}}"
    for item in "${items[@]}"; do
      if [[ $item =~ ^([0-9]+)\(x([0-9]+)\)$ ]]; then
        for ((i = 0; i < BASH_REMATCH[2]; i++)); do per_node+=("${BASH_REMATCH[1]}"); done
      else
        per_node+=("$item")
      fi
    done
    export LOCAL_WORLD_SIZE=${per_node[${SLURM_NODEID:-0}]:-$WORLD_SIZE}
    exec "$@"' agpt-task "$@"
}

# The run directory: derived from the job name, so a requeued job (same name) finds its checkpoints and
# resumes, and a new experiment needs only a new --job-name. RUN_DIR overrides it.
agpt_run_dir() {
  RUN_DIR=${RUN_DIR:-${RUNS_ROOT:-runs}/${SLURM_JOB_NAME:-$1}}
  export RUN_DIR
}

# Training on every task: default config (or $CONFIG), then the user's -c files, then run_dir, then the
# user's key=value overrides (so run_dir=... on the command line still wins).
agpt_train() {
  local default_cfg=$1
  shift
  agpt_split_args "$@"
  agpt_default_cfg "$default_cfg"
  agpt_run_dir train
  agpt_banner "train"
  echo "[actiongpt] run directory $RUN_DIR (resumes from its newest complete checkpoint)"
  local rc=0
  agpt_srun "$PYTHON" -m launch.train "${AGPT_FLAGS[@]}" "${AGPT_DEFAULT_CFG[@]}" "${AGPT_CFG[@]}" \
      "run_dir=$RUN_DIR" "${AGPT_OVR[@]}" || rc=$?
  echo "[actiongpt] $(date -Is) train step ended with status $rc"
  return $rc
}

# Submit a one-task job that runs "$@" (in this job's working directory, logging next to this job's log)
# once job $1 has completed successfully; it is cancelled if job $1 fails. $2 is its job name.
agpt_submit_after() {
  local after=$1 name=$2
  shift 2
  local logdir cmd jid
  logdir=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *StdOut=\(.*\)$/\1/p' | head -n 1) || true
  logdir=$(dirname "${logdir:-$PWD/x}")
  cmd=$(printf '%q ' "$@")
  local opts=(--parsable --job-name="$name" --dependency="afterok:$after" --kill-on-invalid-dep=yes
              --ntasks=1 --cpus-per-task=1 --time="${MERGE_TIME:-00:30:00}" --chdir="$PWD"
              --output="$logdir/%x-%j.out" --open-mode=append)
  [ -n "${SLURM_JOB_PARTITION:-}" ] && opts+=(--partition="$SLURM_JOB_PARTITION")
  [ -n "${SLURM_JOB_ACCOUNT:-}" ] && opts+=(--account="$SLURM_JOB_ACCOUNT")
  jid=$(sbatch "${opts[@]}" --wrap="$cmd") || agpt_die "could not submit the follow-up job $name"
  echo "[actiongpt] submitted $name as job $jid (after $after succeeds): $cmd"
}
