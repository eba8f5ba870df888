"""LiteLLM: completion() through its OpenAI-compatible route (`openai/<model>` with api_base) with a
Pydantic and a dict response_format, streamed; a tool round trip; responses() with a text format."""
import json
from importlib.metadata import version

import litellm

from common import (CHAT_TOOL, MAX_TOKENS, RESPONSES_TOOL, STRUCT_PROMPT, TOOL_PROMPT, City, check_city,
                    check_tool_ran, expect, expect_content, get_weather_impl, parse_city_text)
from harness import check

C = "litellm " + version("litellm")
litellm.telemetry = False
litellm.drop_params = False  # a parameter the server does not take must show, not vanish


def kw(ctx):
    return dict(model=f"openai/{ctx.model}", api_base=ctx.base_url, api_key=ctx.api_key, timeout=300,
                num_retries=0, temperature=0)


def ask(ctx, **more):
    return litellm.completion(messages=[{"role": "user", "content": STRUCT_PROMPT}], max_tokens=MAX_TOKENS,
                              **kw(ctx), **more)


@check(C, "completion(response_format=City)")
def pydantic_format(ctx):
    r = ask(ctx, response_format=City)
    return check_city(parse_city_text(r.choices[0].message.content, "content"))


@check(C, "completion(response_format=json_schema dict)")
def dict_format(ctx):
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": City.model_json_schema(), "strict": True}}
    r = ask(ctx, response_format=fmt)
    return check_city(parse_city_text(r.choices[0].message.content, "content"))


@check(C, "completion(stream=True, response_format=City)")
def streamed_format(ctx):
    deltas = [c.choices[0].delta.content for c in ask(ctx, response_format=City, stream=True)
              if c.choices and c.choices[0].delta.content]
    expect(len(deltas) > 1, f"{len(deltas)} content deltas")
    return f"{len(deltas)} deltas; " + check_city(parse_city_text("".join(deltas), "streamed text"))


@check(C, "tools round trip (required, then auto)")
def tools(ctx):
    calls, messages = [], [{"role": "user", "content": TOOL_PROMPT}]
    r = litellm.completion(messages=messages, tools=[CHAT_TOOL], tool_choice="required", max_tokens=MAX_TOKENS,
                           **kw(ctx))
    msg = r.choices[0].message
    expect(msg.tool_calls, f"no tool call under tool_choice required: {msg.content!r:.120}")
    expect(r.choices[0].finish_reason == "tool_calls", f"finish_reason {r.choices[0].finish_reason}")
    messages.append(msg.model_dump(exclude_none=True))
    for tc in msg.tool_calls:
        messages.append({"role": "tool", "tool_call_id": tc.id,
                         "content": get_weather_impl(calls, json.loads(tc.function.arguments)["city"])})
    r2 = litellm.completion(messages=messages, tools=[CHAT_TOOL], max_tokens=MAX_TOKENS, **kw(ctx))
    expect_content(not r2.choices[0].message.tool_calls, "called the tool again instead of answering")
    return check_tool_ran(calls, r2.choices[0].message.content)


@check(C, "tool call streamed (required)")
def tool_stream(ctx):
    name, args, chunks = "", "", 0
    for chunk in litellm.completion(messages=[{"role": "user", "content": TOOL_PROMPT}], tools=[CHAT_TOOL],
                                    tool_choice="required", max_tokens=MAX_TOKENS, stream=True, **kw(ctx)):
        chunks += 1
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += tc.function.name or ""
            args += tc.function.arguments or ""
    expect(chunks > 1, f"{chunks} chunks")
    expect(name == "get_weather", f"call name {name!r}")
    parsed = json.loads(args)
    expect(isinstance(parsed.get("city"), str), f"arguments {parsed}")
    return f"{chunks} chunks; get_weather({parsed})"


@check(C, "responses(text_format json_schema)")
def responses_format(ctx):
    text = {"format": {"type": "json_schema", "name": "City", "schema": City.model_json_schema(), "strict": True}}
    r = litellm.responses(input=STRUCT_PROMPT, text=text, max_output_tokens=MAX_TOKENS, **kw(ctx))
    out = "".join(part.text for item in r.output if item.type == "message" for part in item.content
                  if part.type == "output_text")
    return check_city(parse_city_text(out, "output_text"))


@check(C, "responses(tools, tool_choice required)")
def responses_tool(ctx):
    r = litellm.responses(input=TOOL_PROMPT, tools=[RESPONSES_TOOL], tool_choice="required",
                          max_output_tokens=MAX_TOKENS, **kw(ctx))
    fcs = [o for o in r.output if o.type == "function_call"]
    expect(fcs and fcs[0].name == "get_weather", f"output items {[o.type for o in r.output]}")
    parsed = json.loads(fcs[0].arguments)
    expect(isinstance(parsed.get("city"), str), f"arguments {parsed}")
    return f"get_weather({parsed})"
