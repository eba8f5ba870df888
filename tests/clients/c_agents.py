"""openai-agents: its default model (OpenAIResponsesModel, the Responses API) and
OpenAIChatCompletionsModel, each with a structured output_type, a tool round trip, a tool beside
an output_type, and streaming."""
from importlib.metadata import version

import openai
import pydantic
from agents import (Agent, MaxTurnsExceeded, ModelBehaviorError, ModelSettings, OpenAIChatCompletionsModel,
                    OpenAIResponsesModel, RawResponsesStreamEvent, Runner, function_tool, set_tracing_disabled)

from common import (MAX_TOKENS, STRUCT_PROMPT, TOOL_PROMPT, City, check_city, check_tool_ran, expect, expect_content,
                    get_weather_impl, tool_result_sent)
from harness import check

set_tracing_disabled(True)
V = version("openai-agents")
CR = f"openai-agents {V} (responses, default)"
CC = f"openai-agents {V} (chat)"
MAX_TURNS = 4  # a model that keeps calling the tool stops here


def model(ctx, responses):
    client = openai.AsyncOpenAI(base_url=ctx.base_url, api_key=ctx.api_key, timeout=300, max_retries=0)
    return (OpenAIResponsesModel if responses else OpenAIChatCompletionsModel)(ctx.model, openai_client=client)


def settings(tool_choice=None):
    return ModelSettings(temperature=0, max_tokens=MAX_TOKENS, tool_choice=tool_choice)


def endpoint(responses):
    return "/responses" if responses else "/chat/completions"


async def structured(ctx, responses):
    agent = Agent(name="records", instructions="Answer with the record asked for.", model=model(ctx, responses),
                  output_type=City, model_settings=settings())
    r = await Runner.run(agent, STRUCT_PROMPT, max_turns=MAX_TURNS)
    sent = ctx.requests(endpoint(responses))[-1]
    expect("text" in sent or "response_format" in sent, f"no output format sent: {list(sent)}")
    return check_city(r.final_output)


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


async def round_trip(ctx, responses, output_type, tool_choice):
    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return get_weather_impl(calls, city)

    # The SDK resets tool_choice to auto after the first call (reset_tool_choice), so "required"
    # forces one call and leaves the model free to answer after it.
    agent = Agent(name="weather", instructions="You answer weather questions with the get_weather tool.",
                  model=model(ctx, responses), tools=[get_weather], output_type=output_type,
                  model_settings=settings(tool_choice))
    try:
        r = await Runner.run(agent, TOOL_PROMPT, max_turns=MAX_TURNS)
    except (MaxTurnsExceeded, ModelBehaviorError) as e:
        expect_content(False, f"{type(e).__name__}: {e} (tool ran {len(calls)}x)")
    expect_content(calls, f"the tool never ran; output {r.final_output!r:.100}")
    expect(tool_result_sent(ctx, endpoint(responses)), "the tool's result was not sent back")
    if output_type is None:
        return check_tool_ran(calls, r.final_output)
    expect(isinstance(r.final_output, Weather), f"final_output {r.final_output!r:.200}")
    expect_content(r.final_output.celsius == 22, f"final output ignores the tool result: {r.final_output!r}")
    return f"get_weather({calls[0]!r}) -> {r.final_output!r}"


async def stream(ctx, responses, output_type):
    agent = Agent(name="streamer", model=model(ctx, responses), output_type=output_type, model_settings=settings())
    prompt = STRUCT_PROMPT if output_type else "Count from 1 to 5, separated by commas."
    r = Runner.run_streamed(agent, prompt, max_turns=MAX_TURNS)
    deltas = []
    async for event in r.stream_events():
        if isinstance(event, RawResponsesStreamEvent) and event.data.type == "response.output_text.delta":
            deltas.append(event.data.delta)
    events = ctx.sse_events()
    expect(events > 1, f"{events} SSE events")
    expect(len(deltas) > 1, f"{len(deltas)} text deltas")
    if output_type is None:
        expect("".join(deltas) == r.final_output, f"deltas {''.join(deltas)!r} != output {r.final_output!r}")
        expect_content("3" in r.final_output, f"text {r.final_output!r:.80}")
        return f"{events} events, {len(deltas)} deltas: {r.final_output.strip()[:40]!r}"
    expect(City.model_validate_json("".join(deltas)) == r.final_output, "final_output != the streamed text")
    return f"{events} events, {len(deltas)} deltas; " + check_city(r.final_output)


for _c, _r in ((CR, True), (CC, False)):
    check(_c, "output_type=City")(lambda ctx, r=_r: structured(ctx, r))
    check(_c, "tool round trip (required, then auto)")(lambda ctx, r=_r: round_trip(ctx, r, None, "required"))
    check(_c, "tool + output_type=Weather (required, then auto)")(
        lambda ctx, r=_r: round_trip(ctx, r, Weather, "required"))
    check(_c, "tool round trip (auto)", guaranteed=False)(lambda ctx, r=_r: round_trip(ctx, r, None, None))
    check(_c, "run_streamed, text")(lambda ctx, r=_r: stream(ctx, r, None))
    check(_c, "run_streamed, output_type=City")(lambda ctx, r=_r: stream(ctx, r, City))
