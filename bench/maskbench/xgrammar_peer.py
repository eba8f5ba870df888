"""maskbench's XGrammar peer: a helper process that the `xgrammar` engine's worker
(bench/maskbench/engines.rs) starts once and talks to in JSON lines on stdin/stdout.

    -> {"vocab": [hex of each token's bytes, "" for control tokens], "eos": id, "max_threads": n}
    <- ready
    -> {"schema": "<JSON Schema text>", "valid": [[token ids], ...], "invalid": [[...], ...]}
    <- {"compile_us": ..., "error": ..., "mask_us": [...], "valid": [...], "invalid": [...]}

Instances come tokenised by the Rust side (the model's own tokenizer, compact JSON, keys in
schema order), so this process only runs XGrammar, and times only XGrammar's calls: compile =
`compile_json_schema` + `GrammarMatcher` + the first `fill_next_token_bitmask`; a step =
`fill_next_token_bitmask` + `accept_token` (reading the token's bit is left out, pipes and JSON
too). Answers read like the worker's `Answer` (worker.rs).

Configured as vLLM's xgrammar backend (vllm/v1/structured_output/backend_xgrammar.py) runs it for
a JSON Schema request: `compile_json_schema(schema, any_whitespace=True)` (vLLM passes
`any_whitespace=not disable_any_whitespace`, and `disable_any_whitespace` is off by default),
`strict_mode` left at its default (True: no properties or items the schema does not declare),
`any_order` at its default (False: properties in schema order), one `GrammarMatcher` per
request with the tokenizer's stop token, the bitmask an int32 array of ceil(vocab/32) words.
Compact instances are valid under `any_whitespace=True` (whitespace is allowed, not required),
so they need no other serialisation. Two departures, both for a like-for-like measurement:
`max_threads=1` (vLLM passes 8; every engine here runs on one thread, and this machine has 2
cores) and `cache_enabled=False` (vLLM keeps a compiled-grammar cache; with it a schema that
recurs in the data would compile in no time, which no other engine here gets). vLLM's own
request check before XGrammar (`has_xgrammar_unsupported_json_features`, which refuses e.g.
`multipleOf`, `uniqueItems`, unknown `format`s, and falls back to guidance under `auto`) is not
applied: this measures XGrammar itself. `XGRAMMAR_MAX_THREADS` overrides the thread count.

The vocabulary is built from the raw token bytes (`TokenizerInfo(..., VocabType.RAW)`), which is
what `TokenizerInfo.from_huggingface` decodes a byte-level vocabulary to; control tokens get
empty bytes, which XGrammar treats as special (never allowed), as the other engines exclude them.

torch: xgrammar 0.2.9 imports torch (and transformers) at import time, in modules this peer never
calls (`matcher.py` for `torch.int32` and a default-mask constant, `testing.py`, the HF
`LogitsProcessor` in `contrib/hf.py`, the `TokenizerInfo.from_huggingface` signature). PyPI's
torch for Linux x86_64 is the CUDA build (539 MB wheel for torch 2.15.0) and with `--no-deps`
its import fails for want of cuBLAS; with its dependencies it is gigabytes of CUDA. So the venv
has no torch and this script puts in small stand-ins for `torch` and `transformers` holding only
the names those imports touch; anything else raises. The bitmask is a numpy int32 array, handed to
`fill_next_token_bitmask` through DLPack (any DLPack array on CPU will do) as a tvm_ffi tensor
made once. tvm_ffi,
XGrammar's binding layer, imports torch optionally too, so it is imported first, while there is
no torch at all, and keeps its torch-free paths.
"""

import ctypes
import gc
import json
import os
import signal
import sys
import time
import types


def die_with_parent(parent_pid):
    """The worker that started us may be killed (a timeout): go with it, so that a runaway
    compile here never goes on using a core the next measurements need."""
    try:
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        sys.exit(0)


def stand_in(name, attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)

    def missing(attr):
        raise AttributeError(f"{name}.{attr}: maskbench's stand-in for {name} has only what importing xgrammar needs")

    module.__getattr__ = missing
    return module


def import_xgrammar():
    import tvm_ffi  # noqa: F401  (first, while `import torch` fails: see the module docstring)

    class Tensor:
        pass

    torch = stand_in("torch", {
        "Tensor": Tensor, "LongTensor": Tensor, "FloatTensor": Tensor,
        "int32": "int32",
        "tensor": lambda *args, **kwargs: None,  # matcher.py's _FULL_MASK, unused here
    })
    transformers = stand_in("transformers", {
        name: type(name, (), {}) for name in ("PreTrainedTokenizerBase", "PreTrainedTokenizerFast", "LogitsProcessor")
    })
    for name, module in (("torch", torch), ("transformers", transformers)):
        if name in sys.modules:
            raise SystemExit(f"xgrammar_peer: a real {name} is already imported")
        sys.modules[name] = module
    import xgrammar

    return xgrammar


def main():
    die_with_parent(int(sys.argv[1]) if len(sys.argv) > 1 else None)
    import numpy as np

    xgr = import_xgrammar()
    import tvm_ffi
    stdin, stdout = sys.stdin.buffer, sys.stdout
    setup = json.loads(stdin.readline())
    vocab = [bytes.fromhex(h) for h in setup["vocab"]]
    eos = setup["eos"]
    threads = int(os.environ.get("XGRAMMAR_MAX_THREADS", setup.get("max_threads", 1)))
    info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=len(vocab), stop_token_ids=[eos])
    compiler = xgr.GrammarCompiler(info, max_threads=threads, cache_enabled=False)
    words = np.full((1, (len(vocab) + 31) // 32), -1, dtype=np.int32)
    # The same memory as a tvm_ffi tensor, converted once: XGrammar's calls take it as they are,
    # where a numpy array would go through DLPack again on every call (~0.2 µs).
    bitmask = tvm_ffi.from_dlpack(words)
    words = words[0]
    del vocab, setup
    gc.collect()
    gc.freeze()  # start-up objects stay out of the collector's way during the walks
    clock = time.perf_counter_ns

    def walk(matcher, tokens, times):
        """Every token through the mask and the matcher; True when all were allowed and the
        end is too. Only XGrammar's calls are timed."""
        matcher.reset()
        fill, accept = matcher.fill_next_token_bitmask, matcher.accept_token
        for t in tokens:
            t0 = clock()
            fill(bitmask)
            t1 = clock()
            allowed = (int(words[t >> 5]) >> (t & 31)) & 1
            t2 = clock()
            ok = bool(allowed) and accept(t)
            t3 = clock()
            if times is not None:
                times.append(((t1 - t0) + (t3 - t2)) / 1e3)
            if not ok:
                return False
        # End of sequence allowed here: the stop token goes through (not timed).
        return bool(accept(eos))

    stdout.write("ready\n")
    stdout.flush()
    for line in stdin:
        job = json.loads(line)
        answer = {"compile_us": None, "error": None, "mask_us": [], "valid": [], "invalid": []}
        try:
            t0 = clock()
            compiled = compiler.compile_json_schema(job["schema"], any_whitespace=True)
            matcher = xgr.GrammarMatcher(compiled)
            matcher.fill_next_token_bitmask(bitmask)
            answer["compile_us"] = (clock() - t0) / 1e3
        except Exception as e:  # XGrammar's refusals: unsupported or invalid schemas
            answer["error"] = f"{type(e).__name__}: {e}"
        if answer["compile_us"] is not None:
            answer["valid"] = [walk(matcher, tokens, answer["mask_us"]) for tokens in job["valid"]]
            answer["invalid"] = [walk(matcher, tokens, None) for tokens in job["invalid"]]
            del matcher, compiled
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()
