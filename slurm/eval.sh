#!/bin/bash
# APE/AVE evaluation of a trained model on a split, one task per GPU (metrics are identical for any task count).
#
#   sbatch slurm/eval.sh checkpoint=runs/teach/model.safetensors                     # -> runs/eval/metrics.json
#   sbatch --job-name=eval-teach-label slurm/eval.sh checkpoint=runs/teach-label text_source=label
#   sbatch slurm/eval.sh -c configs/eval/zeroshot.yaml checkpoint=runs/teach/model.safetensors
#   sbatch --nodes=2 --gpus-per-node=8 --ntasks-per-node=8 slurm/eval.sh checkpoint=...
#   sbatch --gpus-per-node=0 --ntasks-per-node=2 --cpus-per-task=1 slurm/eval.sh checkpoint=...   # CPU only
#
# #SBATCH lines are defaults (command-line sbatch options override them); arguments are `-c FILE` (layered over
# configs/eval/default.yaml, or over $CONFIG), flags of `actiongpt eval run` (--flag=value) and key=value
# overrides. Results go to runs/<job name> (RUN_DIR overrides; so does out_dir=...).
#SBATCH --job-name=eval
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
agpt_default_cfg configs/eval/default.yaml
agpt_run_dir eval
agpt_banner eval
echo "[actiongpt] results in $RUN_DIR"
agpt_srun "$PYTHON" -m launch.cli eval run "${AGPT_FLAGS[@]}" "${AGPT_DEFAULT_CFG[@]}" "${AGPT_CFG[@]}" \
    "out_dir=$RUN_DIR" "${AGPT_OVR[@]}"
