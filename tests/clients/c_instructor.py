"""instructor: every mode it offers for OpenAI-compatible servers, and its streaming helpers.
(instructor extracts structured output only: it has no tool round trip of its own; its
PARALLEL_TOOLS mode is the nearest, several calls parsed in one answer.)"""
import json
from typing import Iterable, Union

import instructor
from instructor.core import InstructorRetryException
import openai
import pydantic

from common import MAX_TOKENS, STRUCT_PROMPT, City, Content, check_city, expect, expect_content
from harness import check

C = "instructor " + instructor.__version__


def client(ctx, mode):
    raw = openai.OpenAI(base_url=ctx.base_url, api_key=ctx.api_key, timeout=300, max_retries=0)
    return instructor.from_openai(raw, mode=mode)


def extract(ctx, mode, **kw):
    return client(ctx, mode).chat.completions.create(
        model=ctx.model, response_model=City, messages=[{"role": "user", "content": STRUCT_PROMPT}],
        max_tokens=MAX_TOKENS, temperature=0, max_retries=0, **kw)


def json_in_wire(ctx):
    """Whether the server's last answer was JSON (so a failure to fit City is the model's, where
    the request left the schema to the prompt)."""
    for x in reversed(ctx.exchanges()):
        try:
            body = json.loads(x["response"])
            text = body["choices"][0]["message"]["content"]
            json.loads(text)
            return True
        except (ValueError, KeyError, IndexError, TypeError):
            return False
    return False


@check(C, "Mode.TOOLS")
def tools(ctx):
    return check_city(extract(ctx, instructor.Mode.TOOLS))


@check(C, "Mode.TOOLS, strict=True")
def tools_strict(ctx):
    return check_city(extract(ctx, instructor.Mode.TOOLS, strict=True))


@check(C, "Mode.TOOLS_STRICT (deprecated alias)")
def tools_strict_alias(ctx):
    return check_city(extract(ctx, instructor.Mode.TOOLS_STRICT))


@check(C, "Mode.JSON_SCHEMA")
def json_schema(ctx):
    return check_city(extract(ctx, instructor.Mode.JSON_SCHEMA))


@check(C, "Mode.JSON (json_object + schema in the prompt)", guaranteed=False)
def json_mode(ctx):
    try:
        city = extract(ctx, instructor.Mode.JSON)
    except Exception as e:
        expect(json_in_wire(ctx), f"json_object answer is not JSON: {e}")
        raise Content(f"JSON answer does not fit City: {e}") from None
    return check_city(city)


@check(C, "Mode.MD_JSON (no format sent)", guaranteed=False)
def md_json(ctx):
    return check_city(extract(ctx, instructor.Mode.MD_JSON))


@check(C, "Mode.RESPONSES_TOOLS")
def responses_tools(ctx):
    city = extract(ctx, instructor.Mode.RESPONSES_TOOLS)
    expect(ctx.requests("/responses"), "no request to /v1/responses")
    return check_city(city)


class Weather(pydantic.BaseModel):
    city: str


class Time(pydantic.BaseModel):
    city: str


@check(C, "Mode.PARALLEL_TOOLS (tool_choice auto)", guaranteed=False)
def parallel_tools(ctx):
    c = client(ctx, instructor.Mode.PARALLEL_TOOLS)
    try:
        out = list(c.chat.completions.create(
            model=ctx.model, response_model=Iterable[Union[Weather, Time]], max_tokens=MAX_TOKENS,
            temperature=0, max_retries=0,
            messages=[{"role": "user", "content": "Look up the weather in Paris and the time in Tokyo."}]))
    except InstructorRetryException:
        out = []
    if not out:
        text = json.loads(ctx.exchanges()[-1]["response"])["choices"][0]["message"]["content"]
        raise Content(f"no calls under tool_choice auto; the model wrote {text!r:.100}")
    expect(all(isinstance(o, (Weather, Time)) for o in out), f"got {out!r}")
    return ", ".join(f"{type(o).__name__}({o.city})" for o in out)


def partial_stream(ctx, mode):
    c = client(ctx, mode)
    partials = list(c.chat.completions.create_partial(
        model=ctx.model, response_model=City, messages=[{"role": "user", "content": STRUCT_PROMPT}],
        max_tokens=MAX_TOKENS, temperature=0, max_retries=0))
    events = ctx.sse_events()
    expect(events > 1, f"{events} SSE events")
    expect(partials, "no partial object")
    final = City.model_validate(partials[-1].model_dump())
    # A call's arguments come as one delta (README), so tools modes give one partial: noted.
    return f"{events} events, {len(partials)} partials; " + check_city(final)


for _mode in ("TOOLS", "JSON_SCHEMA", "RESPONSES_TOOLS"):
    check(C, f"create_partial, Mode.{_mode} (stream)")(lambda ctx, m=_mode: partial_stream(ctx, instructor.Mode[m]))


def iterable(ctx, mode):
    c = client(ctx, mode)
    try:
        out = list(c.chat.completions.create_iterable(
            model=ctx.model, response_model=City, max_tokens=150, temperature=0, max_retries=0,
            messages=[{"role": "user", "content": "Paris (France, 2100000 people) and Rome (Italy, 2800000 "
                                                  "people): give both city records."}]))
    except pydantic.ValidationError as e:
        # The schema instructor sends ({"tasks": [City]}, nothing required) allows {} and
        # {"tasks": []}; instructor's stream parser then fails on them. Valid under the schema:
        # the model's choice, though the compact layout is what leads it there (report).
        args = wire_output(ctx)
        expect(args is not None, f"no output on the wire: {e}")
        expect(isinstance(args, dict) and not args.get("tasks"), f"{args!r:.200} failed to parse: {e}")
        raise Content(f"the model wrote {json.dumps(args)} (schema-valid, no records)") from None
    expect(all(isinstance(o, City) for o in out), f"got {out!r:.200}")
    expect_content(len(out) == 2, f"{len(out)} records; the model wrote {json.dumps(wire_output(ctx))}")
    return f"{ctx.sse_events()} events, {len(out)} records: " + ", ".join(o.name for o in out)


def wire_output(ctx):
    """The JSON the last streamed answer carried (a call's arguments or the content)."""
    text = ""
    for line in ctx.exchanges()[-1]["response"].splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            delta = json.loads(line[5:])["choices"][0]["delta"] if json.loads(line[5:])["choices"] else {}
            text += delta.get("content") or ""
            for tc in delta.get("tool_calls") or []:
                text += tc["function"].get("arguments") or ""
    try:
        return json.loads(text)
    except ValueError:
        return None


for _mode in ("TOOLS", "JSON_SCHEMA"):
    check(C, f"create_iterable, Mode.{_mode} (stream)")(lambda ctx, m=_mode: iterable(ctx, instructor.Mode[m]))
