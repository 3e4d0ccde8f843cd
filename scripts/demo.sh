#!/usr/bin/env bash
# Set up the environment and run the main job on the embedded default. Extra arguments go to `actiongpt demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec actiongpt demo "$@"
