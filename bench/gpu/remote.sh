#!/usr/bin/env bash
# On the GPU machine (bench/gpu/README.md), from the repository root.
#   remote.sh receive   keep the carried model parts; with stage/, unpack it and start building
#                       llama.cpp's shared libraries with CUDA in the background
#   remote.sh run       wait for that build, then serve on the GPU and measure; results in $OUT/results.tgz
set -euo pipefail
W=/root/gpu
mkdir -p "$W"

receive() {
    for p in .gpu/part-*; do [ -e "$p" ] && cp "$p" "$W/"; done
    if [ -d .gpu/stage ] && [ ! -e "$W/build.started" ]; then
        cp -r .gpu/stage "$W/" && touch "$W/build.started"
        mkdir -p "$W/llama.cpp" && tar -C "$W/llama.cpp" -xJf "$W/stage/llama.cpp.tar.xz"
        xz -dc "$W/stage/conform.xz" > "$W/conform" && chmod +x "$W/conform"
        # The same options llama-cpp-sys-2 gives CMake for `dynamic-link`, plus CUDA for the
        # H200 alone (sm_90) and without the FlashAttention kernels, to build in minutes.
        setsid nohup bash -c "cmake -S $W/llama.cpp -B $W/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
            -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
            -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
            -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF \
            -DLLAMA_BUILD_MTMD=OFF > $W/build.log 2>&1 && cmake --build $W/build -j 16 >> $W/build.log 2>&1; \
            echo \$? > $W/build.rc" < /dev/null > /dev/null 2>&1 &
    fi
    ls -la "$W"
}

run() {
    # Results go to $OUT/results.tgz at the end: the device tool returns at most 8 files.
    local R=$OUT/r
    mkdir -p "$R"
    local waited=0
    while [ ! -e "$W/build.rc" ] && [ $waited -lt 360 ]; do sleep 5; waited=$((waited + 5)); done
    echo "waited ${waited}s for the CUDA build"; tail -5 "$W/build.log"
    [ "$(cat "$W/build.rc" 2>/dev/null)" = 0 ] || { cp "$W/build.log" "$OUT/"; exit 1; }
    mkdir -p "$W/models"
    cat "$W"/part-* > "$W/models/qwen2.5-coder-0.5b-instruct.gguf"
    echo "$(cat "$W/stage/model.sha256")  $W/models/qwen2.5-coder-0.5b-instruct.gguf" | sha256sum -c
    cp models/manifest.json models/*.tpm "$W/models/"
    export CONFORM_MODELS=$W/models LD_LIBRARY_PATH="$(dirname "$(find "$W/build" -name 'libllama.so*' | head -1)")"
    mkdir -p target/release && cp "$W/conform" target/release/conform
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$W"/stage/wheels/*.whl
    export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
    set +e  # one failing step still leaves the others' results
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$R/gpu.txt"
    ldd target/release/conform | grep -E 'llama|ggml' | tee -a "$R/gpu.txt"

    # Where the weights went, from the server's own report.
    ./target/release/conform serve --port 18080 2> "$R/serve.log" &
    local server=$!
    for _ in $(seq 120); do
        python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:18080/health").read().decode())' \
            > "$R/health.json" 2>/dev/null && break
        sleep 1
    done
    cat "$R/health.json"; echo
    kill "$server"; wait "$server"

    # The openai client's end-to-end test against a server on the GPU.
    python3 tests/openai_client_test.py 2>&1 | tail -5 | tee "$R/openai_client_test.txt"

    # Throughput, free and constrained: 1, 8 and 32 streams.
    for mode in free mask lookahead; do
        BENCH_STREAMS=1,8,32 BENCH_PARALLEL=32 BENCH_MAX_TOKENS=256 BENCH_OUT="$R/serve-$mode.json" \
            BENCH_FORMAT_MODE=$([ $mode = free ] || echo $mode) python3 bench/serve.py
    done

    # Per-token cost of the mask and of lookahead against free decoding, one request at a time.
    ./target/release/conform ab --suite gsm8k --data "$W/stage/test_dev.jsonl" --arms free,mask,lookahead \
        --prompt task --limit 30 --max-tokens 200 --parallel 1 --ctx-size 1024 --out "$W/ab" 2>&1 | tail -3
    cp "$W/ab/report.json" "$R/ab-gsm8k-per-token.json"
    python3 bench/lookahead_speed.py "$W/ab/report.json" | tee "$R/per-token.txt"
    tar -C "$R" -czf "$OUT/results.tgz" . && rm -rf "$R"
}

"$@"
