#!/usr/bin/env python3
"""The reference chat-template renderer: Jinja2 set up the way Hugging Face transformers renders
chat templates (sandboxed, trim_blocks and lstrip_blocks, loop controls, `tojson` as
`json.dumps` without ASCII escaping, `raise_exception`, `strftime_now`), as an independent check
of conform's own renderer (tests/integration/chat_formats.rs).

Reads one JSON object on stdin: {template, messages, tools, kwargs, bos_token, eos_token}; writes
{"text": …} or {"error": …} on stdout.
"""
import json, sys
from datetime import datetime

from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise ValueError(message)


def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def render(job):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    template = env.from_string(job["template"])
    return template.render(messages=job["messages"], tools=job.get("tools"), add_generation_prompt=True,
                           bos_token=job["bos_token"], eos_token=job["eos_token"], **job.get("kwargs", {}))


def main():
    job = json.load(sys.stdin)
    try:
        print(json.dumps({"text": render(job)}))
    except Exception as e:  # the template refused: both renderers must
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
