"""One chat-style turn on the engine, whatever the protocol: the core every adapter shares.

An adapter (chat completions, the Responses API, Anthropic's Messages) maps its request
onto a `conversion.turn.Turn`. From there the work is the same for all of them and
lives only here and in `app.serving.prompt`: grammars for structured replies and
forced calls, the chat template (tools rendered by the template or described in the
system message), tokenizing, the context-length check (or dropping the oldest
messages, for protocols that ask for it), submitting the choices together, prompt
logging, metrics, cancellation when the client leaves, and deciding what of the reply
is content and what is a tool call. The adapter gets back `conversion.reply` values
and frames them in its own wire shapes.

Everything that can fail because of the request fails in `start_turn`, before the
response starts, so it gets a real 4xx/503 status; once a stream has started,
failures go in-band, framed by the adapter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Request

from app.access_log import request_stats
from app.auth import request_owner
from app.engine.base import Engine
from app.metrics import Metrics, RequestStats
from app.serving.fanout import ChoiceResult, Fanout, IndexedEvent, submit_all, usage_part
from app.serving.prompt import turn_prompt
from app.serving.stream import collect_all, first_then_rest
from config.settings import Settings
from conversion.families import Family, ReplyShaper
from conversion.generation import TextDelta, TokenLogprob
from conversion.params import per_choice
from conversion.reply import ChoiceEnd, ChoiceReply, ContentPiece, ReasoningPiece, TurnEvent
from conversion.tools import ToolPlan
from conversion.turn import Turn
from conversion.usage import UsagePart, combined_usage
from conversion.wire import Usage

__all__ = ("StartedTurn", "start_turn")

prompt_log = logging.getLogger("llm_service.prompts")
_messages_json = msgspec.json.Encoder()


@dataclass(slots=True)
class StartedTurn:
    """A turn whose choices are queued. Read it once: `replies()` or `events()`."""

    request: Request[Any, Any, Any]
    fanout: Fanout
    plan: ToolPlan | None
    family: Family
    separate_reasoning: bool
    count: int
    logprobs: bool
    stats: RequestStats | None
    metrics: Metrics | None
    prompt_tokens: int
    dropped: int
    """Leading messages dropped to make the prompt fit (with `truncate`)."""
    parts: list[UsagePart] = field(default_factory=list)
    """Each choice's token counts, once `replies()` has them."""

    async def replies(self) -> tuple[list[ChoiceReply], Usage]:
        """Every choice, whole, and the request's usage (for a JSON reply); each
        choice's own counts are then in `parts`."""
        results = await collect_all(self.request, self.fanout, self.stats, self.metrics)
        self.parts = [usage_part(r.finished) for r in results if r.finished]
        return [self._reply(r) for r in results], combined_usage(self.parts)

    async def events(self) -> AsyncIterator[TurnEvent]:
        """The choices' content as it can be sent, then each one's end. Waits for the
        first event, so a turn that fails to start still fails before the stream."""
        return self._shaped(
            await first_then_rest(self.request, self.fanout, self.stats, self.metrics)
        )

    def cancel(self) -> None:
        self.fanout.cancel()

    def _shaper(self) -> ReplyShaper:
        return ReplyShaper(self.family, self.plan, self.separate_reasoning)

    def _reply(self, result: ChoiceResult) -> ChoiceReply:
        assert result.finished is not None
        shaper = self._shaper()
        reasoning, content = [], []
        for text, thinking in result.pieces:
            think, said = shaper.feed(text, thinking)
            reasoning.append(think)
            content.append(said)
        think, rest, calls, finish_reason = shaper.finish(result.finished.finish_reason)
        thinks = result.finished.reasoning_tokens and self.separate_reasoning
        thought = "".join([*reasoning, think]) if thinks else None
        tokens = result.logprobs if self.logprobs else None
        matched = result.finished.stop_sequence
        if calls:
            before = "".join(content) or None  # text the reply had before its calls
            return ChoiceReply(before, finish_reason, calls, tokens, thought, matched)
        text = "".join([*content, rest])
        return ChoiceReply(text, finish_reason, (), tokens, thought, matched)

    async def _shaped(self, events: AsyncIterator[IndexedEvent]) -> AsyncIterator[TurnEvent]:
        shapers = [self._shaper() for _ in range(self.count)]
        held: list[list[TokenLogprob]] = [[] for _ in range(self.count)]
        async for index, item in events:
            if isinstance(item, TextDelta):
                held[index].extend(item.logprobs)
                think, said = shapers[index].feed(item.text, item.thinking)
                if think:
                    yield ReasoningPiece(index, think)
                if said:
                    yield ContentPiece(index, said, held[index] if self.logprobs else None)
                    held[index] = []
                continue
            think, rest, calls, finish_reason = shapers[index].finish(item.finish_reason)
            tokens = held[index] if self.logprobs else None
            if think:
                yield ReasoningPiece(index, think)
            if rest or (tokens and not calls):
                yield ContentPiece(index, rest, None if calls else tokens)
            yield ChoiceEnd(
                index,
                finish_reason,
                calls,
                tokens if calls else None,
                usage_part(item),
                item.stop_sequence,
            )


async def start_turn(
    request: Request[Any, Any, Any],
    turn: Turn,
    engine: Engine,
    settings: Settings,
    metrics: Metrics | None = None,
) -> StartedTurn:
    """Check, render, tokenize and queue the turn's choices (see the module docstring)."""
    family = engine.family
    rendered = await turn_prompt(engine, turn, settings)
    jobs = [(rendered.prompt.tokens, p) for p in per_choice(rendered.params, turn.choices)]
    fanout = submit_all(engine, jobs, request_owner(request))
    stats = request_stats(request.scope)
    if settings.server.log_prompts:
        prompt_log.info(
            "request_id=%s messages=%s",
            stats.request_id if stats else "-",
            _messages_json.encode(turn.messages).decode(),
        )
    return StartedTurn(
        request=request,
        fanout=fanout,
        plan=turn.plan,
        family=family,
        separate_reasoning=settings.model.reasoning_format != "none",
        count=turn.choices,
        logprobs=rendered.params.logprobs is not None,
        stats=stats,
        metrics=metrics,
        prompt_tokens=len(rendered.prompt.tokens),
        dropped=rendered.dropped,
    )
