#!/bin/bash
# Write the WebDataset shards + manifest of the configured dataset splits (embeds what is missing first).
# CPU work: tasks split the samples; rank 0 merges the manifest. Rerunning skips finished work.
#
#   sbatch slurm/build_shards.sh                                   # configs/shards/default.yaml
#   sbatch slurm/build_shards.sh -c configs/shards/paper-teach.yaml --skip-embed
#   sbatch --ntasks-per-node=16 --cpus-per-task=2 slurm/build_shards.sh
#
# #SBATCH lines are defaults (command-line sbatch options override them); arguments are `-c FILE` (layered over
# configs/shards/default.yaml, or over $CONFIG), flags of `actiongpt shards build` and key=value overrides.
#SBATCH --job-name=build-shards
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=2
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
agpt_banner "shards build"
agpt_srun "$PYTHON" -m launch.cli shards build --no-progress "${AGPT_FLAGS[@]}" "${AGPT_DEFAULT_CFG[@]}" \
    "${AGPT_CFG[@]}" "${AGPT_OVR[@]}"
