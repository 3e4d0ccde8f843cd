#!/bin/bash
# LLM descriptions of every action label as a Slurm array: task i of n describes the labels of part i/n
# (sha256(label) mod n), appending to runs/<job name>/parts/part-i-of-n.jsonl; a rerun or requeue skips what
# is cached. When every task has succeeded, a dependent job merges the parts into descriptions.jsonl.
#
#   sbatch slurm/describe.sh labels=[data/babel/train.json,data/babel/val.json]        # 4 tasks, OpenAI
#   sbatch --array=0-15%4 slurm/describe.sh labels=[...]                  # 16 parts, at most 4 at a time
#   OPENAI_API_KEY=... sbatch --job-name=desc-gpt4o slurm/describe.sh labels=[...] openai.model=gpt-4o-mini
#   sbatch slurm/describe.sh labels=[...] openai.base_url=http://vllm-host:8000/v1 openai.model=my-model
#   sbatch --gpus-per-node=1 slurm/describe.sh -c configs/describe/local_smollm2.yaml labels=[...]
#   AUTO_MERGE=0 sbatch slurm/describe.sh ...      # no merge job; later: python -m launch.cli describe merge runs/<name>
#
# #SBATCH lines are defaults (command-line sbatch options override them); arguments are `-c FILE` (layered over
# configs/describe/openai.yaml, or over $CONFIG), flags of `actiongpt describe run` and key=value overrides.
# The API key is read from the environment (exported to the job by sbatch) and never written anywhere.
#SBATCH --job-name=describe
#SBATCH --array=0-3
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --time=08:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm/logs/%x-%A_%a.out
set -euo pipefail
AGPT_LIB=${ACTIONGPT_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}/slurm/lib/common.sh
[ -f "$AGPT_LIB" ] || { echo "run sbatch from the repository root, or set ACTIONGPT_ROOT" >&2; exit 2; }
. "$AGPT_LIB"
agpt_setup
agpt_split_args "$@"
agpt_default_cfg configs/describe/openai.yaml
agpt_run_dir describe
agpt_banner "describe part ${SLURM_ARRAY_TASK_ID:-0} of ${SLURM_ARRAY_TASK_COUNT:-1}"
echo "[actiongpt] descriptions in $RUN_DIR"
# The first task, on its first run, submits the merge: it starts once every array task has succeeded.
if [ "${AUTO_MERGE:-1}" = 1 ] && [ -n "${SLURM_ARRAY_JOB_ID:-}" ] \
    && [ "${SLURM_ARRAY_TASK_ID:-}" = "${SLURM_ARRAY_TASK_MIN:-}" ] && [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then
  agpt_submit_after "$SLURM_ARRAY_JOB_ID" "${SLURM_JOB_NAME}-merge" \
      "$PYTHON" -m launch.cli describe merge "$RUN_DIR"
fi
agpt_srun "$PYTHON" -m launch.cli describe run --no-progress "${AGPT_FLAGS[@]}" "${AGPT_DEFAULT_CFG[@]}" \
    "${AGPT_CFG[@]}" "out_dir=$RUN_DIR" "${AGPT_OVR[@]}"
