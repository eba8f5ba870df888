"""What every client's checks share: the structured-output model, the tool, the prompts."""
import json

import pydantic

from harness import Content, expect, expect_content

# Short generations: ~50 tokens/s on 2 cores.
MAX_TOKENS = 80

STRUCT_PROMPT = "Paris is the capital of France and has 2100000 inhabitants. Give its city record."
TOOL_PROMPT = "What is the weather in Paris right now? Use the get_weather tool."
WEATHER_RESULT = "22 degrees Celsius and sunny"


class City(pydantic.BaseModel):
    name: str
    country: str
    population: int


def check_city(city, what="structured output"):
    """The structured output parsed into the model (else the caller's exception is the verdict);
    then what it says is the model's business."""
    expect(isinstance(city, City), f"{what}: got {type(city).__name__}, not City: {city!r:.200}")
    expect_content("paris" in city.name.lower(), f"{what}: city name {city.name!r}")
    return f"{city.model_dump_json()}"


def get_weather_impl(calls, city):
    calls.append(city)
    return f"{WEATHER_RESULT} in {city}"


def check_tool_ran(calls, final_text, what="tool round trip"):
    """The tool ran with parsed arguments and a final answer came back; whether the answer uses
    the tool's result is the model's business."""
    expect(calls, f"{what}: the tool never ran")
    expect(all(isinstance(c, str) and c for c in calls), f"{what}: tool args {calls!r}")
    expect(isinstance(final_text, str) and final_text.strip(), f"{what}: no final answer ({final_text!r})")
    expect_content("22" in final_text, f"{what}: final answer ignores the tool result: {final_text!r:.160}")
    return f"get_weather({calls[0]!r}) -> {final_text.strip()[:70]!r}"


def tool_result_sent(ctx, path_suffix):
    """The tool's result went back to the server in a later request (read off the wire)."""
    for body in ctx.requests(path_suffix):
        if WEATHER_RESULT in json.dumps(body):
            return True
    return False


WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}},
                  "required": ["city"], "additionalProperties": False}
CHAT_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_PARAMS}}
RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
                  "parameters": WEATHER_PARAMS, "strict": True}


def parse_city_text(text, what):
    try:
        return City.model_validate_json(text)
    except pydantic.ValidationError as e:
        raise AssertionError(f"{what}: {text!r:.200} does not parse as City: {e}") from None


__all__ = ["City", "check_city", "get_weather_impl", "check_tool_ran", "tool_result_sent", "Content",
           "CHAT_TOOL", "RESPONSES_TOOL", "MAX_TOKENS", "STRUCT_PROMPT", "TOOL_PROMPT",
           "WEATHER_RESULT", "parse_city_text", "expect", "expect_content"]
