#!/usr/bin/env bash
# Here, on the CPU machine: everything the GPU machine needs, in pieces the device tool can carry
# (64 MiB a call, working tree included). See bench/gpu/README.md.
#   .gpu/stage/    conform built against llama.cpp as shared libraries, the exact llama.cpp source
#                  the pinned llama-cpp-sys-2 vendors, the openai client's wheels, GSM8K dev items
#   .gpu/part-NN   the default model, cut so that part-00 travels with stage/ and each other part
#                  alone (sha256 in stage/model.sha256)
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUSTFLAGS="-C target-cpu=native"
cargo build --release --quiet --features dynamic-link --target-dir target/dylib --bin conform
model=models/qwen2.5-coder-0.5b-instruct.gguf
[ -f "$model" ] || python3 models/fetch.py
rm -rf .gpu && mkdir -p .gpu/stage/wheels
xz -T0 -6 -c target/dylib/release/conform > .gpu/stage/conform.xz
sys=$(cargo metadata --format-version 1 --quiet | python3 -c \
  'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "llama-cpp-sys-2"))')
tar -C "$(dirname "$sys")/llama.cpp" -cJf .gpu/stage/llama.cpp.tar.xz \
    CMakeLists.txt LICENSE cmake include src vendor common ggml
cp "${CONFORM_DATA:-../shared/data}/gsm8k/test_dev.jsonl" .gpu/stage/
# The openai client for tests/openai_client_test.py, for the GPU machine's Python 3.12 (1.x: it
# needs only the httpx, anyio and tqdm already there).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .gpu/stage/wheels openai==1.109.1 pydantic==2.13.4 pydantic-core==2.46.4 jiter==0.19.0 \
    distro==1.9.0 sniffio==1.3.1 annotated-types==0.7.0 typing-inspection==0.4.2 typing-extensions==4.15.0
sha256sum "$model" | cut -d' ' -f1 > .gpu/stage/model.sha256
# Each call carries at most 64 MiB with the working tree (~3 MiB): 59 MiB a part, the first less
# by what stage/ weighs.
python3 - "$model" <<'PY'
import os, sys
part, stage = 59 << 20, sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(".gpu/stage") for f in fs)
with open(sys.argv[1], "rb") as src:
    sizes = [part - stage - (1 << 20)]
    n = 0
    while chunk := src.read(sizes[-1] if n == 0 else part):
        open(f".gpu/part-{n:02}", "wb").write(chunk)
        n += 1
print(f"stage {stage >> 20} MiB, {n} parts")
PY
du -sh .gpu/*
