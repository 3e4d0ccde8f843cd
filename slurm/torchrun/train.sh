#!/bin/bash
# The srun + torchrun recipe: ONE task per node runs torchrun, which starts one process per GPU (c10d
# rendezvous at the first node, port from the job id). For sites that prefer torchrun over one srun task per GPU.
#
#   sbatch slurm/torchrun/train.sh                                          # TEACH, 1 node x 4 GPUs
#   sbatch --nodes=4 slurm/torchrun/train.sh                                # 4 nodes x 4 GPUs
#   sbatch --gpus-per-node=8 slurm/torchrun/train.sh                        # NPROC follows the GPUs per node
#   CONFIG=configs/train/temos.yaml sbatch --job-name=temos slurm/torchrun/train.sh lr=1e-4
#   NPROC_PER_NODE=2 sbatch --gpus-per-node=0 --cpus-per-task=2 slurm/torchrun/train.sh   # CPU, 2 ranks/node
#
# Preemption: Slurm signals torchrun (the only task); torchrun forwards SIGUSR1/SIGTERM to its workers
# (--signals-to-handle), every worker saves at the next step boundary, rank 0 requeues the job, and the
# requeued job resumes from runs/<job name>. torchrun kills workers SHUTDOWN_TIMEOUT s (default 600) after
# forwarding, so keep that longer than one checkpoint save. Knobs as in slurm/train_teach.sh.
#SBATCH --job-name=teach
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --signal=USR1@180
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out
set -euo pipefail
AGPT_LIB=${ACTIONGPT_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/slurm/lib/common.sh
[ -f "$AGPT_LIB" ] || { echo "run sbatch from the repository root, or set ACTIONGPT_ROOT" >&2; exit 2; }
. "$AGPT_LIB"
agpt_setup
agpt_split_args "$@"
agpt_default_cfg configs/train/teach.yaml
agpt_run_dir train
# Processes per node: the GPUs Slurm gave each node (SLURM_GPUS_ON_NODE), else NPROC_PER_NODE, else 1.
NPROC_PER_NODE=${NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}
[ "$NPROC_PER_NODE" -ge 1 ] 2>/dev/null || NPROC_PER_NODE=1
# torchrun's workers, not the task, own the threads: split the task's CPUs between them.
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-$NPROC_PER_NODE} / NPROC_PER_NODE > 0 ? ${SLURM_CPUS_PER_TASK:-$NPROC_PER_NODE} / NPROC_PER_NODE : 1 ))
agpt_banner "train (torchrun, $NPROC_PER_NODE per node)"
echo "[actiongpt] run directory $RUN_DIR (resumes from its newest complete checkpoint)"
rc=0
# shellcheck disable=SC2086  # SRUN_EXTRA is a list of options
srun --kill-on-bad-exit=1 ${SRUN_EXTRA:-} "$PYTHON" -m torch.distributed.run \
    --nnodes="$SLURM_JOB_NUM_NODES" --nproc-per-node="$NPROC_PER_NODE" \
    --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT" \
    --signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2 \
    --shutdown-timeout="${SHUTDOWN_TIMEOUT:-600}" \
    -m launch.train "${AGPT_FLAGS[@]}" "${AGPT_DEFAULT_CFG[@]}" "${AGPT_CFG[@]}" "run_dir=$RUN_DIR" \
    "${AGPT_OVR[@]}" || rc=$?
echo "[actiongpt] $(date -Is) train step ended with status $rc"
exit $rc
