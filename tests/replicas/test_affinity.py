"""Through the proxy: requests spread over the replicas, streams pass unbuffered, and a
conversation's turns land on the replica that holds its KV cache, whichever key the
client sends (or none), in each API.

Reuse is read from each replica's own record (`llm_cached_prompt_tokens_total` on its
/metrics, token-exact), around each request: the requests here are sent one at a time,
so a change belongs to the request just made. `cached_tokens` in the usage counts the
same reuse OpenAI's way (whole 128-token blocks, from 1,024-token prompts), which one
test checks on a conversation long enough for it.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.replicas.conftest import Proxy, Replica, openai_client

TURNS = 5


@dataclass(frozen=True)
class Turn:
    replica: str
    prompt_tokens: int
    reused_tokens: int


@dataclass
class Recorder:
    """Sends a conversation's requests one by one and records where each went and how
    much of its prompt that replica's engine took from its cache."""

    replicas: list[Replica]
    turns: list[Turn] = field(default_factory=list)

    def _reused(self) -> dict[str, float]:
        return {r.name: r.metric("llm_cached_prompt_tokens_total") for r in self.replicas}

    def send(self, request: Callable[[], tuple[str, int]]) -> None:
        """`request` sends one turn and returns (the `llm-replica` header, prompt tokens)."""
        before = self._reused()
        replica, prompt_tokens = request()
        after = self._reused()
        reused = {name: after[name] - before[name] for name in after}
        assert all(reused[name] == 0 for name in reused if name != replica), reused
        self.turns.append(Turn(replica, prompt_tokens, int(reused[replica])))


Conversation = Callable[[Proxy, str, Recorder], None]


def _chat(keys: Callable[[str], dict[str, Any]], *, system: bool = True) -> Conversation:
    def run(proxy: Proxy, topic: str, recorder: Recorder) -> None:
        messages: list[dict[str, str]] = [
            {"role": "system", "content": f"You are a helpful assistant. Session {topic}."},
            {"role": "user", "content": f"Tell me one fact about rivers ({topic})."},
        ][0 if system else 1 :]
        with openai_client(proxy) as client:
            for n in range(TURNS):

                def turn() -> tuple[str, int]:
                    raw = client.chat.completions.with_raw_response.create(
                        model="any",
                        messages=messages,  # type: ignore[arg-type]
                        max_tokens=12,
                        temperature=0,
                        **keys(topic),
                    )
                    reply = raw.parse()
                    assert reply.usage is not None
                    messages.append(
                        {"role": "assistant", "content": reply.choices[0].message.content or ""}
                    )
                    return raw.headers["llm-replica"], reply.usage.prompt_tokens

                recorder.send(turn)
                messages.append({"role": "user", "content": f"Tell me another one ({n})."})

    return run


def _responses_chain(proxy: Proxy, topic: str, recorder: Recorder) -> None:
    """`previous_response_id` and nothing else: the response lives on one replica."""
    previous: list[str] = []
    with openai_client(proxy) as client:
        for n in range(TURNS):

            def turn(n: int = n) -> tuple[str, int]:
                raw = client.responses.with_raw_response.create(
                    model="any",
                    input=f"Tell me one fact about mountains ({topic}, {n}).",
                    max_output_tokens=16,
                    temperature=0,
                    **({"previous_response_id": previous[-1]} if previous else {}),
                )
                reply = raw.parse()
                assert reply.usage is not None
                previous.append(reply.id)
                return raw.headers["llm-replica"], reply.usage.input_tokens

            recorder.send(turn)
        # Reading a stored response goes to its replica too.
        stored = client.responses.with_raw_response.retrieve(previous[0])
        assert stored.parse().id == previous[0]
        assert stored.headers["llm-replica"] == recorder.turns[0].replica


def _anthropic(proxy: Proxy, topic: str, recorder: Recorder) -> None:
    """Anthropic's SDK with no key at all: the conversation's start routes it."""
    messages: list[dict[str, str]] = [
        {"role": "user", "content": f"Tell me one fact about forests ({topic})."}
    ]
    with anthropic.Anthropic(base_url=proxy.root, api_key="k", max_retries=0) as client:
        for n in range(TURNS):

            def turn() -> tuple[str, int]:
                raw = client.messages.with_raw_response.create(
                    model="any",
                    system=f"You are a helpful assistant. Session {topic}.",
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=12,
                    extra_body={"temperature": 0},
                )
                reply = raw.parse()
                text = "".join(block.text for block in reply.content if block.type == "text")
                messages.append({"role": "assistant", "content": text or "."})
                usage = reply.usage
                return raw.headers["llm-replica"], usage.input_tokens + (
                    usage.cache_read_input_tokens or 0
                )

            recorder.send(turn)
            messages.append({"role": "user", "content": f"Tell me another one ({n})."})


CONVERSATIONS: dict[str, Conversation] = {
    "chat-prompt_cache_key": _chat(lambda topic: {"prompt_cache_key": f"conv-{topic}"}),
    "chat-user": _chat(lambda topic: {"user": f"user-{topic}"}),
    "chat-no-key": _chat(lambda topic: {}),
    "chat-no-key-no-system": _chat(lambda topic: {}, system=False),
    "responses-previous_response_id": _responses_chain,
    "anthropic-no-key": _anthropic,
}


def _converse(kind: str, proxy: Proxy, replicas: list[Replica]) -> list[Turn]:
    recorder = Recorder(replicas)
    CONVERSATIONS[kind](proxy, uuid.uuid4().hex, recorder)
    return recorder.turns


_THROUGH_THE_PROXY: dict[str, list[Turn]] = {}
"""Each kind's conversation through the shipped configuration, as the first test here
recorded it: the comparison with round robin reads it again instead of repeating it
(each costs seconds on the replicas' one thread)."""


@pytest.mark.parametrize("kind", list(CONVERSATIONS))
def test_a_conversation_stays_on_the_replica_that_holds_its_cache(
    kind: str, proxy: Proxy, replicas: list[Replica]
) -> None:
    turns = _THROUGH_THE_PROXY[kind] = _converse(kind, proxy, replicas)
    assert len({turn.replica for turn in turns}) == 1, turns
    # Each later turn finds the earlier turn's prompt in the cache: at least all of it
    # but the last few tokens (where the template closes a turn differently).
    for earlier, later in itertools.pairwise(turns):
        assert later.reused_tokens >= earlier.prompt_tokens - 8, turns


def test_round_robin_scatters_the_same_conversation_and_loses_the_reuse(
    proxy: Proxy, round_robin: Proxy, replicas: list[Replica]
) -> None:
    """The comparison the affinity exists for: the same conversation, both ways."""
    kind = "chat-prompt_cache_key"
    with_affinity = _THROUGH_THE_PROXY.get(kind) or _converse(kind, proxy, replicas)
    scattered = _converse(kind, round_robin, replicas)

    assert len({turn.replica for turn in with_affinity}) == 1
    assert len({turn.replica for turn in scattered}) == 3
    prompt = sum(turn.prompt_tokens for turn in with_affinity[1:])
    reused = sum(turn.reused_tokens for turn in with_affinity[1:])
    reused_round_robin = sum(turn.reused_tokens for turn in scattered[1:])
    assert reused > 0.8 * prompt
    assert reused_round_robin < 0.6 * reused


def test_cached_tokens_in_the_usage_show_the_reuse_of_a_long_conversation(
    proxy: Proxy,
) -> None:
    """OpenAI counts `cached_tokens` only from 1,024-token prompts: a long first turn."""
    topic = uuid.uuid4().hex
    facts = " ".join(f"River {i} is {i * 7} km long." for i in range(90))  # ~1,130 tokens
    question = f"Session {topic}. {facts}\nWhich river is the longest?"
    messages: list[dict[str, str]] = [{"role": "user", "content": question}]
    served = []
    cached = []
    with openai_client(proxy) as client:
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(
                model="any",
                messages=messages,
                max_tokens=8,
                temperature=0,
                user=topic,  # type: ignore[arg-type]
            )
            reply = raw.parse()
            assert reply.usage is not None
            assert reply.usage.prompt_tokens >= 1024
            assert reply.usage.prompt_tokens_details is not None
            served.append(raw.headers["llm-replica"])
            cached.append(reply.usage.prompt_tokens_details.cached_tokens)
            messages += [
                {"role": "assistant", "content": reply.choices[0].message.content or ""},
                {"role": "user", "content": "And the shortest?"},
            ]
    assert served[0] == served[1]
    assert cached[0] == 0
    assert cached[1] is not None
    assert cached[1] >= 1024


def test_requests_spread_over_all_replicas(proxy: Proxy) -> None:
    served: list[str] = []
    with openai_client(proxy) as client:
        for n in range(12):
            raw = client.completions.with_raw_response.create(
                model="any", prompt=f"Count to {n}:", max_tokens=1, user=f"spread-{n}"
            )
            served.append(raw.headers["llm-replica"])
    assert set(served) == {"replica1", "replica2", "replica3"}


def test_the_model_joins_the_affinity_key(proxy: Proxy) -> None:
    """One key with two model names: each pair keeps its replica, and over several keys
    the model moves some of them (the key alone would not)."""

    def replica(client: openai.OpenAI, model: str, n: int) -> str:
        raw = client.completions.with_raw_response.create(
            model=model, prompt="Hi", max_tokens=1, user=f"model-key-{n}"
        )
        return raw.headers["llm-replica"]

    with openai_client(proxy) as client:
        first = {(m, n): replica(client, m, n) for m in ("model-a", "model-b") for n in range(8)}
        again = {(m, n): replica(client, m, n) for m in ("model-a", "model-b") for n in range(8)}
    assert first == again
    assert any(first["model-a", n] != first["model-b", n] for n in range(8))


def test_a_stream_arrives_through_the_proxy_token_by_token(proxy: Proxy) -> None:
    """Nothing between client and replica holds the chunks back: they arrive spread over
    the generation's time, not in one burst at its end."""
    arrivals: list[float] = []
    body = {
        "model": "any",
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": 60,
        "temperature": 0,
        "stream": True,
    }
    url = f"{proxy.base_url}/chat/completions"
    with httpx.stream("POST", url, json=body, timeout=60) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        for line in lines:
            if line.startswith("data: {") and '"content":"' in line:
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 30
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    spread = arrivals[-1] - arrivals[0]
    assert spread > 0.2  # ~60 tokens on one thread take far longer than one burst
    assert max(gaps) < spread / 2  # no single hold-up holds most of the stream
    assert sum(1 for gap in gaps if gap > 0.002) > len(gaps) / 2  # one chunk per token
