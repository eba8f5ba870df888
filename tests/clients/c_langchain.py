"""LangChain's ChatOpenAI: with_structured_output in every method, bind_tools round trips,
streaming; on Chat Completions and with use_responses_api=True."""
import langchain_core
import langchain_openai
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool

from common import (MAX_TOKENS, STRUCT_PROMPT, TOOL_PROMPT, City, Content, check_city, check_tool_ran, expect,
                    expect_content, get_weather_impl, parse_city_text, tool_result_sent)
from harness import check

C = f"langchain-openai {langchain_openai.__version__ if hasattr(langchain_openai, '__version__') else ''}".strip()
try:
    from importlib.metadata import version
    C = f"langchain-openai {version('langchain-openai')}"
except Exception:  # noqa: BLE001
    pass
CR = C + " (responses)"


def llm(ctx, responses=False, **kw):
    return langchain_openai.ChatOpenAI(
        model=ctx.model, base_url=ctx.base_url, api_key=ctx.api_key, temperature=0, max_tokens=MAX_TOKENS,
        max_retries=0, timeout=300, use_responses_api=responses, **kw)


def text_of(msg):
    t = msg.text
    return t() if callable(t) else t


def structured(ctx, method, responses=False, prompt=STRUCT_PROMPT):
    out = llm(ctx, responses).with_structured_output(City, method=method, include_raw=True).invoke(prompt)
    if out["parsing_error"] is not None:
        raise out["parsing_error"]
    return check_city(out["parsed"])


for _client, _resp in ((C, False), (CR, True)):
    for _method in ("json_schema", "function_calling"):
        check(_client, f"with_structured_output(method={_method!r})")(
            lambda ctx, m=_method, r=_resp: structured(ctx, m, r))


JSON_MODE_PROMPT = STRUCT_PROMPT + ' Reply with a JSON object with the keys "name", "country" and "population".'


def json_mode(ctx, responses):
    try:
        return structured(ctx, "json_mode", responses, JSON_MODE_PROMPT)
    except Exception as e:
        # json_object guarantees JSON, not the keys (the prompt asks for them): a JSON answer
        # that misses them is the model's; anything else is the server's.
        raw = llm(ctx, responses).with_structured_output(method="json_mode").invoke(JSON_MODE_PROMPT)
        expect(isinstance(raw, dict), f"json_mode answer is not a JSON object: {e}")
        raise Content(f"JSON that does not fit City: {raw!r:.120}") from None


check(C, "with_structured_output(method='json_mode')", guaranteed=False)(lambda ctx: json_mode(ctx, False))
check(CR, "with_structured_output(method='json_mode')", guaranteed=False)(lambda ctx: json_mode(ctx, True))


def round_trip(ctx, responses, first_choice):
    calls = []

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return get_weather_impl(calls, city)

    messages = [HumanMessage(TOOL_PROMPT)]
    ai = llm(ctx, responses).bind_tools([get_weather], tool_choice=first_choice).invoke(messages)
    expect(not ai.invalid_tool_calls, f"invalid tool calls: {ai.invalid_tool_calls}")
    expect_content(ai.tool_calls, f"no tool call; the model wrote {text_of(ai)!r:.100}")
    messages.append(ai)
    for tc in ai.tool_calls:
        messages.append(ToolMessage(get_weather.invoke(tc["args"]), tool_call_id=tc["id"]))
    final = llm(ctx, responses).bind_tools([get_weather]).invoke(messages)
    expect(tool_result_sent(ctx, "/responses" if responses else "/chat/completions"), "result not sent back")
    expect_content(not final.tool_calls, f"called again instead of answering: {final.tool_calls}")
    return check_tool_ran(calls, text_of(final))


for _client, _resp in ((C, False), (CR, True)):
    check(_client, "bind_tools round trip (required, then auto)")(lambda ctx, r=_resp: round_trip(ctx, r, "required"))
    check(_client, "bind_tools round trip (auto)", guaranteed=False)(lambda ctx, r=_resp: round_trip(ctx, r, "auto"))


def stream_text(ctx, responses):
    chunks = list(llm(ctx, responses).stream("Count from 1 to 5, separated by commas."))
    texts = [text_of(c) for c in chunks]
    whole = "".join(texts)
    expect(len([t for t in texts if t]) > 1 or responses, f"{len(chunks)} chunks")
    expect(len(chunks) > 1, f"{len(chunks)} chunks")
    expect(whole.strip(), "no text")
    expect_content("3" in whole, f"text {whole!r:.80}")
    return f"{len(chunks)} chunks, {len([t for t in texts if t])} with text: {whole.strip()[:50]!r}"


def stream_structured(ctx, responses):
    # json_schema: the text streams in, the parser runs once at the end.
    runnable = llm(ctx, responses).with_structured_output(City, method="json_schema")
    outs = list(runnable.stream(STRUCT_PROMPT))
    expect(outs, "no output")
    return f"{ctx.sse_events()} events; " + check_city(outs[-1] if isinstance(outs[-1], City) else City(**outs[-1]))


def stream_tool_call(ctx, responses):
    calls = []

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return get_weather_impl(calls, city)

    acc = None
    n = 0
    for chunk in llm(ctx, responses).bind_tools([get_weather], tool_choice="required").stream(TOOL_PROMPT):
        acc = chunk if acc is None else acc + chunk
        n += 1
    expect(n > 1, f"{n} chunks")
    expect(acc.tool_calls and acc.tool_calls[0]["name"] == "get_weather", f"tool calls {acc.tool_calls}")
    expect(isinstance(acc.tool_calls[0]["args"].get("city"), str), f"args {acc.tool_calls[0]['args']}")
    return f"{n} chunks; get_weather({acc.tool_calls[0]['args']})"


for _client, _resp in ((C, False), (CR, True)):
    check(_client, "stream (text)")(lambda ctx, r=_resp: stream_text(ctx, r))
    check(_client, "stream (with_structured_output json_schema)")(lambda ctx, r=_resp: stream_structured(ctx, r))
    check(_client, "stream (bind_tools, required)")(lambda ctx, r=_resp: stream_tool_call(ctx, r))

_ = (langchain_core, parse_city_text)
