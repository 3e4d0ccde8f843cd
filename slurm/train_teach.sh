#!/bin/bash
# Train Action-GPT TEACH (DDP or DeepSpeed), one task per GPU; preemption-safe (signal -> save -> requeue -> resume).
#
#   sbatch slurm/train_teach.sh                                      # 1 node x 4 GPUs, configs/train/teach.yaml
#   sbatch --nodes=2 slurm/train_teach.sh                            # 2 nodes x 4 GPUs = 8 ranks
#   sbatch --gpus-per-node=8 --ntasks-per-node=8 slurm/train_teach.sh   # keep tasks == GPUs per node
#   sbatch --job-name=teach-lr2e4 slurm/train_teach.sh lr=2e-4       # a new run: runs/teach-lr2e4
#   sbatch slurm/train_teach.sh -c configs/train/deepspeed.yaml text_source=label
#   sbatch -p gpu -A myproj --constraint=a100 --time=2-00:00:00 --signal=USR1@300 slurm/train_teach.sh
#   CONFIG=my_teach.yaml RUNS_ROOT=/scratch/$USER/runs sbatch slurm/train_teach.sh   # replace the default config
#
# Every #SBATCH line below is a default: an sbatch option on the command line overrides it. Arguments after
# the script are `-c FILE` (layered over the default config) and `key=value` overrides (last wins).
# The run directory is runs/<job name> (RUN_DIR overrides it); the same job name resumes the same run, so a
# requeued job continues from its newest complete checkpoint. The log is appended across requeues.
# See slurm/README.md for the environment knobs (ACTIONGPT_ROOT, PYTHON, RUNS_ROOT, CONFIG, SRUN_EXTRA).
#SBATCH --job-name=teach
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
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
agpt_train configs/train/teach.yaml "$@"
