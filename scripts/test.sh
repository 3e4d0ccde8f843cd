#!/usr/bin/env bash
# Set up the environment and run the test suite. Extra arguments go to pytest.
# pytest exits 5 when no test ran; that is a failure here, never a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DS_ACCELERATOR=cpu TOKENIZERS_PARALLELISM=false
exec python -m pytest "$@"
