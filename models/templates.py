#!/usr/bin/env python3
"""Fetch real chat templates of ~70 model families for the chat-format tests.

They ship in the source distribution of llama-cpp-python 0.3.36 on PyPI
(`vendor/llama.cpp/models/templates/*.jinja`); the sdist is downloaded once, sha256-checked,
and the templates extracted to ~/.cache/conform/templates (or $CONFORM_CACHE/templates).
Prints that directory. Silent otherwise when the templates are already there.
"""
import hashlib, os, subprocess, sys, tarfile
from pathlib import Path

CACHE = Path(os.environ.get("CONFORM_CACHE", Path.home() / ".cache" / "conform"))
SDIST = "llama_cpp_python-0.3.36.tar.gz"
SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
INSIDE = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates/"


def main():
    target = CACHE / "templates"
    done = target / ".complete"
    if done.exists():
        print(target)
        return
    downloads = CACHE / "sdists"
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = downloads / SDIST
    if not sdist.exists():
        print("fetch: downloading llama-cpp-python==0.3.36 (source, for its chat templates)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        "-d", str(downloads), "llama-cpp-python==0.3.36"], check=True)
    got = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if got != SHA256:
        sdist.unlink()
        sys.exit(f"fetch: {SDIST}: sha256 mismatch (got {got})")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if member.name.startswith(INSIDE) and member.name.endswith(".jinja") and member.isfile():
                (target / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    done.write_text(SHA256)
    print(target)


if __name__ == "__main__":
    main()
