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


if __name__ == "__main__":
    unittest.main(verbosity=2)
