#!/usr/bin/env python3
"""The official `openai` Python client against a live conform server (run by `make test`)."""
import json
import os
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

import openai
import pydantic

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen2.5-coder-0.5b-instruct"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenAIClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        port = free_port()
        cls.server = subprocess.Popen(
            [str(ROOT / "target/release/conform"), "serve", "--port", str(port), "--parallel", "2",
             "--ctx-size", "1024", "--exit-with-stdin"],
            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        cls.client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        # A hang guard, not a speed check: on a loaded machine the model loads slowly.
        deadline = time.time() + 600
        while True:
            try:
                cls.client.models.list()
                break
            except openai.APIConnectionError:
                if time.time() > deadline or cls.server.poll() is not None:
                    raise
                time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        cls.server.wait()

    def test_models_list(self):
        ids = [m.id for m in self.client.models.list()]
        self.assertEqual(ids, [MODEL])

    def test_chat_completion(self):
        r = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "What is 2+2? Answer with the number."}],
            max_tokens=5, temperature=0)
        self.assertIn("4", r.choices[0].message.content)
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)

    def test_chat_completion_streaming(self):
        stream = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Count: 1, 2, 3"}], max_tokens=8,
            temperature=0, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertTrue(text)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(len(finishes), 1)
        self.assertEqual(chunks[-1].choices, [])
        self.assertTrue(0 < chunks[-1].usage.completion_tokens <= 8)

    def test_completion(self):
        r = self.client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=3, temperature=0)
        self.assertIn("5", r.choices[0].text)
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))

    def test_errors_surface_as_sdk_exceptions(self):
        with self.assertRaises(openai.NotFoundError) as e:
            self.client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.code, "model_not_found")
        with self.assertRaises(openai.BadRequestError) as e:
            self.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], temperature=9)
        self.assertEqual(e.exception.param, "temperature")

    WEATHER = {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"], "additionalProperties": False}}}

    def check_weather_call(self, call):
        self.assertEqual(call.type, "function")
        self.assertEqual(call.function.name, "get_weather")
        args = json.loads(call.function.arguments)
        self.assertIsInstance(args["city"], str)
        self.assertIn(args["unit"], ("celsius", "fahrenheit"))
        self.assertEqual(set(args), {"city", "unit"})

    def test_tool_call_required(self):
        r = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "How warm is it in Rome?"}],
            tools=[self.WEATHER], tool_choice="required", max_tokens=60, temperature=0)
        self.assertEqual(r.choices[0].finish_reason, "tool_calls")
        self.assertGreaterEqual(len(r.choices[0].message.tool_calls), 1)
        for call in r.choices[0].message.tool_calls:
            self.check_weather_call(call)

    def test_tool_call_named_and_streamed(self):
        stream = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Weather in Lima, please."}],
            tools=[self.WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=60, temperature=0, stream=True)
        calls, finish = {}, None
        for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            for tc in delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        self.assertEqual(finish, "tool_calls")
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0]["name"], "get_weather")
        args = json.loads(calls[0]["arguments"])
        self.assertIn(args["unit"], ("celsius", "fahrenheit"))

    def test_tool_result_round_trip(self):
        messages = [{"role": "user", "content": "Weather in Rome?"},
                    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Rome", "unit": "celsius"}'}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "31 degrees, sunny"}]
        r = self.client.chat.completions.create(model=MODEL, messages=messages, tools=[self.WEATHER],
                                                tool_choice="none", max_tokens=30, temperature=0)
        # "none": the model sees the tools and the result, and may not open a call.
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        self.assertIsNone(r.choices[0].message.tool_calls)
        self.assertNotIn("<tool_call>", r.choices[0].message.content)
        self.assertGreater(r.usage.prompt_tokens, 150)

    def test_structured_output_with_pydantic(self):
        class Book(pydantic.BaseModel):
            title: str
            year: int
            in_print: bool

        r = self.client.beta.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": "Name a classic novel."}],
            response_format=Book, max_tokens=60, temperature=0)
        book = r.choices[0].message.parsed
        self.assertIsInstance(book, Book)
        self.assertTrue(book.title)

    # Responses API.

    def test_responses_create(self):
        r = self.client.responses.create(model=MODEL, input="What is 2+2? Answer with the number.",
                                         max_output_tokens=5, temperature=0)
        self.assertEqual(r.object, "response")
        self.assertTrue(r.id.startswith("resp_"))
        self.assertIn(r.status, ("completed", "incomplete"))
        self.assertIn("4", r.output_text)
        self.assertEqual(r.output[0].type, "message")
        self.assertEqual(r.usage.total_tokens, r.usage.input_tokens + r.usage.output_tokens)

    def test_responses_instructions_and_cut(self):
        r = self.client.responses.create(model=MODEL, instructions="Answer in French.",
                                         input=[{"role": "user", "content": [{"type": "input_text", "text": "Say a long story."}]}],
                                         max_output_tokens=4, temperature=0)
        self.assertEqual(r.instructions, "Answer in French.")
        self.assertEqual(r.status, "incomplete")
        self.assertEqual(r.incomplete_details.reason, "max_output_tokens")

    def test_responses_streaming(self):
        events = list(self.client.responses.create(model=MODEL, input="Count: 1, 2, 3", max_output_tokens=8,
                                                   temperature=0, stream=True))
        types = [e.type for e in events]
        self.assertEqual(types[:4], ["response.created", "response.in_progress",
                                     "response.output_item.added", "response.content_part.added"])
        self.assertEqual(types[-4:], ["response.output_text.done", "response.content_part.done",
                                      "response.output_item.done", types[-1]])
        self.assertIn(types[-1], ("response.completed", "response.incomplete"))
        self.assertEqual([e.sequence_number for e in events], list(range(len(events))))
        pieces = [e.delta for e in events if e.type == "response.output_text.delta"]
        # The text streams as the model writes it, not in one delta at the end.
        self.assertGreater(len(pieces), 1)
        self.assertEqual("".join(pieces), events[-1].response.output_text)
        self.assertIsNotNone(events[-1].response.usage)
        self.assertGreaterEqual(events[-1].response.usage.output_tokens, len(pieces))

    def test_responses_streamed_tool_call(self):
        tools = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"], "additionalProperties": False}, "strict": True}]
        events = list(self.client.responses.create(model=MODEL, input="What is the weather in Oslo?", tools=tools,
                                                   tool_choice="required", max_output_tokens=48, temperature=0,
                                                   stream=True))
        types = [e.type for e in events]
        self.assertEqual(types[-1], "response.completed")
        self.assertEqual([e.sequence_number for e in events], list(range(len(events))))
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        self.assertTrue(done)
        self.assertEqual(done[0].name, "get_weather")
        self.assertIn("city", json.loads(done[0].arguments))
        final = events[-1].response.output
        self.assertEqual([o.type for o in final], ["function_call"] * len(done))
        self.assertEqual(final[0].arguments, done[0].arguments)
        added = [e for e in events if e.type == "response.output_item.added"]
        self.assertEqual(added[0].item.id, final[0].id)

    def test_responses_parse(self):
        class City(pydantic.BaseModel):
            name: str
            population: int

        r = self.client.responses.parse(model=MODEL, input="Describe Paris as a city record.",
                                        text_format=City, max_output_tokens=48, temperature=0)
        self.assertIsInstance(r.output_parsed, City)

    def test_responses_tool_call(self):
        tools = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"], "additionalProperties": False}, "strict": True}]
        r = self.client.responses.create(model=MODEL, input="What is the weather in Oslo?", tools=tools,
                                         tool_choice="required", max_output_tokens=48, temperature=0)
        calls = [o for o in r.output if o.type == "function_call"]
        self.assertTrue(calls)
        self.assertEqual(calls[0].name, "get_weather")
        self.assertIn("city", json.loads(calls[0].arguments))
        # The round trip: the call and its output go back in as items.
        r2 = self.client.responses.create(
            model=MODEL, tools=tools, max_output_tokens=16, temperature=0,
            input=[{"role": "user", "content": "What is the weather in Oslo?"},
                   {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name,
                    "arguments": calls[0].arguments},
                   {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 20 C"}])
        # With the result in, this small model either answers or repeats its call (written as
        # bare JSON, which is a call under "auto"); either way the shape parses.
        self.assertIn(r2.output[0].type, ("message", "function_call"))
        if r2.output[0].type == "function_call":
            self.assertEqual(r2.output[0].name, "get_weather")
            self.assertIn("city", json.loads(r2.output[0].arguments))

    def test_responses_tools_with_output_type(self):
        """The Agents SDK's shape: a function tool and a structured final output together."""
        class Weather(pydantic.BaseModel):
            city: str
            celsius: int

        tools = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"], "additionalProperties": False}, "strict": True}]
        turns = [{"role": "user", "content": "What is the weather in Oslo?"},
                 {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
                 {"type": "function_call_output", "call_id": "call_1", "output": '{"city": "Oslo", "celsius": 20}'}]
        r = self.client.responses.parse(model=MODEL, input=turns, tools=tools, text_format=Weather,
                                        max_output_tokens=48, temperature=0)
        calls = [o for o in r.output if o.type == "function_call"]
        if calls:
            self.assertIn("city", json.loads(calls[0].arguments))
        else:
            self.assertIsInstance(r.output_parsed, Weather)

    def test_responses_bad_input(self):
        with self.assertRaises(openai.BadRequestError) as e:
            self.client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
        self.assertIn("tools[0].type", str(e.exception))
        with self.assertRaises(openai.BadRequestError) as e:
            self.client.responses.create(model=MODEL, input="hi", previous_response_id="resp_x")
        self.assertIn("previous_response_id", str(e.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
