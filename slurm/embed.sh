#!/bin/bash
# Embed every action label and its LLM descriptions once (the text encoder never runs during training).
# One task per GPU; chunks are spread over the tasks, finished chunks are skipped on a rerun or requeue.
#
#   sbatch slurm/embed.sh                                          # configs/shards/default.yaml (all-MiniLM-L6-v2)
#   sbatch slurm/embed.sh -c configs/shards/paper-teach.yaml       # DistilBERT, as TEMOS/TEACH
#   sbatch --nodes=2 slurm/embed.sh batch_size=256
#
# #SBATCH lines are defaults (command-line sbatch options override them); arguments are `-c FILE` (layered over
# configs/shards/default.yaml, or over $CONFIG), flags of `actiongpt shards embed` and key=value overrides.
#SBATCH --job-name=embed
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%j.out
set -euo pipefail
AGPT_LIB=${ACTIONGPT_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/slurm/lib/common.sh
[ -f "$AGPT_LIB" ] || { echo "run sbatch from the repository root, or set ACTIONGPT_ROOT" >&2; exit 2; }
. "$AGPT_LIB"
agpt_setup
agpt_split_args "$@"
agpt_default_cfg configs/shards/default.yaml
agpt_banner "shards embed"
agpt_srun "$PYTHON" -m launch.cli shards embed --no-progress "${AGPT_FLAGS[@]}" "${AGPT_DEFAULT_CFG[@]}" \
    "${AGPT_CFG[@]}" "${AGPT_OVR[@]}"
