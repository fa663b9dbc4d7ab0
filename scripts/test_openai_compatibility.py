"""Check a running server with the real OpenAI SDK, the way client code uses it.

    python scripts/test_openai_compatibility.py --base-url http://127.0.0.1:8000/v1

Each check prints ✅ or ❌ with what it saw; when all pass the last line is
`✅ 所有测试完成` and the exit code is 0, otherwise 1. Works against any
OpenAI-compatible server; it assumes only that the model answers short prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

import openai

PROMPT: list[Any] = [{"role": "user", "content": "Write a short story about a dragon."}]


class CheckFailedError(AssertionError):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailedError(message)


class Checks:
    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout
        )
        self.async_client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout
        )
        self.model = "gpt-4"  # any name: the server answers with the model it serves

    def chat(self, **request: Any) -> Any:
        return self.client.chat.completions.create(model=self.model, **request)

    def stream(self, **request: Any) -> tuple[str, list[Any]]:
        chunks = list(self.chat(stream=True, **request))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks

    def models(self) -> str:
        models = self.client.models.list().data
        expect(len(models) >= 1, "no models listed")
        self.model = models[0].id
        return f"serving {self.model!r}"

    def non_streaming(self) -> str:
        reply = self.chat(messages=PROMPT, max_tokens=30)
        expect(reply.object == "chat.completion", f"object is {reply.object!r}")
        expect(reply.id.startswith("chatcmpl-"), f"id is {reply.id!r}")
        expect(bool(reply.choices[0].message.content), "empty content")
        expect(reply.choices[0].finish_reason in {"stop", "length"}, "bad finish_reason")
        return repr(reply.choices[0].message.content[:60])

    def usage(self) -> str:
        usage = self.chat(messages=PROMPT, max_tokens=10).usage
        expect(usage is not None, "no usage")
        expect(usage.prompt_tokens > 0, "prompt_tokens is 0")
        expect(
            usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
            f"total_tokens {usage.total_tokens} is not prompt + completion",
        )
        return f"{usage.prompt_tokens} + {usage.completion_tokens} = {usage.total_tokens}"

    def streaming(self) -> str:
        request: dict[str, Any] = {"messages": PROMPT, "max_tokens": 40, "temperature": 0}
        text, chunks = self.stream(stream_options={"include_usage": True}, **request)
        full = self.chat(**request)
        expect(chunks[0].choices[0].delta.role == "assistant", "first delta has no role")
        expect(len({c.id for c in chunks}) == 1, "chunk ids differ")
        finishes = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        expect(len(finishes) == 1, f"{len(finishes)} chunks carry a finish_reason")
        expect(text == full.choices[0].message.content, "stream text differs from non-stream")
        expect(chunks[-1].choices == [], "last chunk is not the usage chunk")
        expect(chunks[-1].usage == full.usage, "stream usage differs from non-stream usage")
        return f"{len(chunks)} chunks, same text and usage as non-streaming"

    def stop(self) -> str:
        request: dict[str, Any] = {"messages": PROMPT, "max_tokens": 60, "temperature": 0}
        reference = self.chat(**request).choices[0].message.content or ""
        words = reference.split(" ")
        expect(len(words) > 6, "reply too short to pick a stop string")
        stop = " ".join(words[3:5])
        expected = reference[: reference.index(stop)]
        reply = self.chat(stop=[stop], **request)
        streamed, _ = self.stream(stop=stop, **request)
        expect(reply.choices[0].message.content == expected, "stop text leaked (non-stream)")
        expect(streamed == expected, "stop text leaked (stream)")
        expect(reply.choices[0].finish_reason == "stop", "finish_reason is not 'stop'")
        return f"stopped before {stop!r}"

    def max_tokens(self) -> str:
        reply = self.chat(messages=PROMPT, max_tokens=5, temperature=0)
        expect(reply.choices[0].finish_reason == "length", "finish_reason is not 'length'")
        expect(reply.usage.completion_tokens == 5, f"{reply.usage.completion_tokens} tokens")
        return "5 tokens, finish_reason 'length'"

    def bad_request(self) -> str:
        try:
            self.chat(messages=PROMPT, temperature=5)
        except openai.BadRequestError as exc:
            expect(exc.param == "temperature", f"param is {exc.param!r}")
            return f"BadRequestError: {exc.message[:60]!r}"
        raise CheckFailedError("temperature=5 was accepted")

    def not_found(self) -> str:
        try:
            self.client.models.retrieve("no-such-model")
        except openai.NotFoundError as exc:
            return f"NotFoundError (code {exc.code!r})"
        raise CheckFailedError("an unknown model was found")

    def still_serving(self) -> str:
        return repr(self.chat(messages=PROMPT, max_tokens=3).choices[0].message.content)

    def async_client_works(self) -> str:
        async def run() -> str:
            reply = await self.async_client.chat.completions.create(
                model=self.model, messages=PROMPT, max_tokens=5
            )
            await self.async_client.close()
            return reply.choices[0].message.content or ""

        return repr(asyncio.run(run()))

    def all(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("models.list", self.models),
            ("non-streaming", self.non_streaming),
            ("usage", self.usage),
            ("streaming", self.streaming),
            ("stop", self.stop),
            ("max_tokens", self.max_tokens),
            ("bad request -> 400", self.bad_request),
            ("unknown model -> 404", self.not_found),
            ("serving after errors", self.still_serving),
            ("async client", self.async_client_works),
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--api-key", default="any-key")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    checks = Checks(args.base_url, args.api_key, args.timeout)
    failed = 0
    for name, check in checks.all():
        try:
            print(f"✅ {name}: {check()}", flush=True)
        except Exception as exc:  # noqa: BLE001 - report every failure, then run the next check
            failed += 1
            print(f"❌ {name}: {type(exc).__name__}: {exc}", flush=True)
    checks.client.close()
    if failed:
        print(f"❌ {failed} of {len(checks.all())} checks failed")
        return 1
    print("✅ 所有测试完成")
    return 0


if __name__ == "__main__":
    sys.exit(main())
