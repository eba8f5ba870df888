"""The `openai` SDK's helpers (tests/openai_client_test.py covers the raw endpoints)."""
import json

import openai

from common import (CHAT_TOOL, MAX_TOKENS, RESPONSES_TOOL, STRUCT_PROMPT, TOOL_PROMPT, City, check_city,
                    check_tool_ran, expect, expect_content, get_weather_impl, parse_city_text)
from harness import check

C = "openai " + openai.__version__


def client(ctx):
    return openai.OpenAI(base_url=ctx.base_url, api_key=ctx.api_key, timeout=300, max_retries=0)


@check(C, "chat.completions.parse(response_format=City)")
def chat_parse(ctx):
    r = client(ctx).chat.completions.parse(
        model=ctx.model, messages=[{"role": "user", "content": STRUCT_PROMPT}], response_format=City,
        max_tokens=MAX_TOKENS, temperature=0)
    return check_city(r.choices[0].message.parsed)


@check(C, "chat.completions.stream(response_format=City)")
def chat_stream(ctx):
    deltas, final = [], None
    with client(ctx).chat.completions.stream(
            model=ctx.model, messages=[{"role": "user", "content": STRUCT_PROMPT}], response_format=City,
            max_tokens=MAX_TOKENS, temperature=0) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()
    expect(len(deltas) > 1, f"{len(deltas)} content deltas")
    text = "".join(deltas)
    expect(text == final.choices[0].message.content, "the deltas do not add up to the final content")
    city = parse_city_text(text, "streamed text")
    expect(final.choices[0].message.parsed == city, "parsed != the streamed text")
    return f"{len(deltas)} deltas; " + check_city(city)


@check(C, "responses.parse(text_format=City)")
def responses_parse(ctx):
    r = client(ctx).responses.parse(model=ctx.model, input=STRUCT_PROMPT, text_format=City,
                                    max_output_tokens=MAX_TOKENS, temperature=0)
    return check_city(r.output_parsed)


@check(C, "responses.stream(text_format=City)")
def responses_stream(ctx):
    types, deltas = [], []
    with client(ctx).responses.stream(model=ctx.model, input=STRUCT_PROMPT, text_format=City,
                                      max_output_tokens=MAX_TOKENS, temperature=0) as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    expect(len(types) > 1 and types[-1] == "response.completed", f"events {types}")
    city = parse_city_text("".join(deltas), "streamed text")
    expect(final.output_parsed == city, "output_parsed != the streamed text")
    return f"{len(types)} events, {len(deltas)} text deltas; " + check_city(city)


def chat_round_trip(ctx, first_choice):
    c, calls = client(ctx), []
    messages = [{"role": "user", "content": TOOL_PROMPT}]
    r = c.chat.completions.create(model=ctx.model, messages=messages, tools=[CHAT_TOOL], tool_choice=first_choice,
                                  max_tokens=MAX_TOKENS, temperature=0)
    msg = r.choices[0].message
    expect_content(msg.tool_calls, f"no tool call: {msg.content!r:.120}")
    expect(r.choices[0].finish_reason == "tool_calls", f"finish_reason {r.choices[0].finish_reason}")
    messages.append(msg.model_dump(exclude_none=True))
    for tc in msg.tool_calls:
        args = json.loads(tc.function.arguments)
        messages.append({"role": "tool", "tool_call_id": tc.id,
                         "content": get_weather_impl(calls, args["city"])})
    r2 = c.chat.completions.create(model=ctx.model, messages=messages, tools=[CHAT_TOOL],
                                   max_tokens=MAX_TOKENS, temperature=0)
    expect_content(not r2.choices[0].message.tool_calls, "called the tool again instead of answering")
    return check_tool_ran(calls, r2.choices[0].message.content)


@check(C, "chat tools round trip (required, then auto)")
def chat_tools(ctx):
    return chat_round_trip(ctx, "required")


@check(C, "chat tools round trip (auto)", guaranteed=False)
def chat_tools_auto(ctx):
    return chat_round_trip(ctx, "auto")


@check(C, "responses tools round trip (required, then auto)")
def responses_tools(ctx):
    c, calls = client(ctx), []
    items = [{"role": "user", "content": TOOL_PROMPT}]
    r = c.responses.create(model=ctx.model, input=items, tools=[RESPONSES_TOOL], tool_choice="required",
                           max_output_tokens=MAX_TOKENS, temperature=0)
    fcs = [o for o in r.output if o.type == "function_call"]
    expect(fcs, f"no function_call item: {[o.type for o in r.output]}")
    for fc in fcs:
        items.append({"type": "function_call", "call_id": fc.call_id, "name": fc.name, "arguments": fc.arguments})
        items.append({"type": "function_call_output", "call_id": fc.call_id,
                      "output": get_weather_impl(calls, json.loads(fc.arguments)["city"])})
    r2 = c.responses.create(model=ctx.model, input=items, tools=[RESPONSES_TOOL],
                            max_output_tokens=MAX_TOKENS, temperature=0)
    expect_content(r2.output_text, f"no text answer: {[o.type for o in r2.output]}")
    return check_tool_ran(calls, r2.output_text)


@check(C, "chat tool call streamed (required)")
def chat_tool_stream(ctx):
    chunks, calls = 0, {}
    stream = client(ctx).chat.completions.create(
        model=ctx.model, messages=[{"role": "user", "content": TOOL_PROMPT}], tools=[CHAT_TOOL],
        tool_choice="required", max_tokens=MAX_TOKENS, temperature=0, stream=True)
    finish = None
    for chunk in stream:
        chunks += 1
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            e = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            e["name"] += tc.function.name or ""
            e["arguments"] += tc.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    expect(chunks > 1, f"{chunks} chunks")
    expect(finish == "tool_calls", f"finish_reason {finish}")
    expect(calls and calls[0]["name"] == "get_weather", f"calls {calls}")
    args = json.loads(calls[0]["arguments"])
    expect(isinstance(args.get("city"), str), f"arguments {args}")
    return f"{chunks} chunks; get_weather({args})"
