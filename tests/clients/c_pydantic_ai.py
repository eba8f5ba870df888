"""pydantic-ai: OpenAIChatModel and OpenAIResponsesModel (through OpenAICompatibleProvider, its
way to an OpenAI-compatible server), each output mode, a tool round trip, streaming."""
from importlib.metadata import version

import openai
import pydantic
from pydantic_ai import Agent, NativeOutput, PromptedOutput, ToolOutput
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.messages import ToolCallPart, ToolReturnPart
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.usage import UsageLimits

from common import (MAX_TOKENS, STRUCT_PROMPT, TOOL_PROMPT, City, Content, check_city, check_tool_ran, expect,
                    expect_content, get_weather_impl, tool_result_sent)
from harness import check

V = version("pydantic-ai-slim")
CC = f"pydantic-ai {V} (chat)"
CR = f"pydantic-ai {V} (responses)"
SETTINGS = {"temperature": 0, "max_tokens": MAX_TOKENS}
LIMITS = UsageLimits(request_limit=4)  # a model that keeps calling the tool stops here


def model(ctx, responses):
    client = openai.AsyncOpenAI(base_url=ctx.base_url, api_key=ctx.api_key, timeout=300, max_retries=0)
    provider = OpenAICompatibleProvider("conform", openai_client=client)
    return (OpenAIResponsesModel if responses else OpenAIChatModel)(ctx.model, provider=provider)


async def structured(ctx, responses, output_type, name):
    agent = Agent(model(ctx, responses), output_type=output_type, model_settings=SETTINGS, retries={"output": 0})
    r = await agent.run(STRUCT_PROMPT, usage_limits=LIMITS)
    sent = ctx.requests()[-1]
    if name == "NativeOutput":  # the mode must really use the server's structured output
        expect("response_format" in sent or "text" in sent, f"no response_format/text.format sent: {list(sent)}")
    return check_city(r.output)


for _c, _r in ((CC, False), (CR, True)):
    check(_c, "output_type=City (ToolOutput, default)")(lambda ctx, r=_r: structured(ctx, r, City, "ToolOutput"))
    check(_c, "output_type=ToolOutput(City)")(lambda ctx, r=_r: structured(ctx, r, ToolOutput(City), "ToolOutput"))
    check(_c, "output_type=NativeOutput(City)")(lambda ctx, r=_r: structured(ctx, r, NativeOutput(City), "NativeOutput"))
    check(_c, "output_type=PromptedOutput(City)", guaranteed=False)(
        lambda ctx, r=_r: structured(ctx, r, PromptedOutput(City), "PromptedOutput"))


def force_first_tool(ctx):
    # 'required' on the first step only (a callable is how pydantic-ai lets tool_choice vary).
    return dict(SETTINGS, tool_choice="required" if ctx.run_step <= 1 else "auto")


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


async def round_trip(ctx, responses, output_type, forced):
    calls = []
    agent = Agent(model(ctx, responses), output_type=output_type, retries={"output": 1},
                  model_settings=force_first_tool if forced else SETTINGS)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return get_weather_impl(calls, city)

    try:
        r = await agent.run(TOOL_PROMPT, usage_limits=LIMITS)
    except (UsageLimitExceeded, UnexpectedModelBehavior) as e:
        expect_content(False, f"{type(e).__name__}: {e} (tool ran {len(calls)}x)")
    expect_content(calls, f"the tool never ran; output {r.output!r:.100}")
    parts = [p for m in r.all_messages() for p in m.parts]
    expect(any(isinstance(p, ToolCallPart) and p.tool_name == "get_weather" for p in parts), "no get_weather call part")
    expect(any(isinstance(p, ToolReturnPart) and p.tool_name == "get_weather" for p in parts), "no tool return part")
    expect(tool_result_sent(ctx, "/responses" if responses else "/chat/completions"), "result not sent back")
    if output_type is str:
        return check_tool_ran(calls, r.output)
    expect(isinstance(r.output, Weather), f"output {r.output!r}")
    expect_content(r.output.celsius == 22, f"final output ignores the tool result: {r.output!r}")
    return f"get_weather({calls[0]!r}) -> {r.output!r}"


for _c, _r in ((CC, False), (CR, True)):
    check(_c, "tool round trip, output str (required, then auto)")(lambda ctx, r=_r: round_trip(ctx, r, str, True))
    check(_c, "tool round trip, output Weather (ToolOutput)")(lambda ctx, r=_r: round_trip(ctx, r, Weather, False))
    check(_c, "tool round trip, output str (auto)", guaranteed=False)(lambda ctx, r=_r: round_trip(ctx, r, str, False))


async def stream_text(ctx, responses):
    agent = Agent(model(ctx, responses), model_settings=SETTINGS)
    deltas = []
    async with agent.run_stream("Count from 1 to 5, separated by commas.") as result:
        async for d in result.stream_text(delta=True):
            deltas.append(d)
        out = await result.get_output()
    events = ctx.sse_events()
    expect(events > 1, f"{events} SSE events")
    expect("".join(deltas) == out, f"deltas {''.join(deltas)!r} != output {out!r}")
    expect_content("3" in out, f"text {out!r:.80}")
    return f"{events} events, {len(deltas)} deltas: {out.strip()[:40]!r}"


async def stream_output(ctx, responses, output_type):
    agent = Agent(model(ctx, responses), output_type=output_type, model_settings=SETTINGS, retries={"output": 0})
    partials = []
    async with agent.run_stream(STRUCT_PROMPT) as result:
        async for p in result.stream_output():
            partials.append(p)
        out = await result.get_output()
    events = ctx.sse_events()
    expect(events > 1, f"{events} SSE events")
    return f"{events} events, {len(partials)} partials; " + check_city(out)


for _c, _r in ((CC, False), (CR, True)):
    check(_c, "run_stream, stream_text")(lambda ctx, r=_r: stream_text(ctx, r))
    check(_c, "run_stream, stream_output (ToolOutput)")(lambda ctx, r=_r: stream_output(ctx, r, City))
    check(_c, "run_stream, stream_output (NativeOutput)")(lambda ctx, r=_r: stream_output(ctx, r, NativeOutput(City)))

_ = Content
