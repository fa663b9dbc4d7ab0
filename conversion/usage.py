"""Token counts -> OpenAI's `usage` object (chat and legacy completions share it).

`cached_tokens` follows OpenAI's counting rules, not the engine's token-exact reuse;
see `reported_cached_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conversion.wire import CompletionTokensDetails, PromptTokensDetails, Usage

__all__ = ("UsagePart", "combined_usage", "reported_cached_tokens", "to_usage")


@dataclass(frozen=True, slots=True)
class UsagePart:
    """One generation's counts."""

    prompt_index: int
    """Which prompt it continued (n choices of one prompt share it)."""
    prompt_tokens: int
    completion_tokens: int
    reused_tokens: int = 0
    reasoning_tokens: int = 0


CACHE_MIN_PROMPT = 1024
CACHE_BLOCK = 128


def reported_cached_tokens(prompt_tokens: int, reused_tokens: int) -> int:
    """`cached_tokens` as OpenAI counts it: 0 below a 1,024-token prompt, else whole
    128-token blocks.

    The engine reuses cache token by token, but clients (and cost dashboards) written
    for OpenAI read this field with OpenAI's meaning; and it keeps usage identical for
    identical short requests, whichever of them found the other's cache.
    """
    if prompt_tokens < CACHE_MIN_PROMPT:
        return 0
    return reused_tokens // CACHE_BLOCK * CACHE_BLOCK


def to_usage(prompt_tokens: int, completion_tokens: int, reused_tokens: int = 0) -> Usage:
    cached_tokens = reported_cached_tokens(prompt_tokens, reused_tokens)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
        completion_tokens_details=CompletionTokensDetails(),
    )


def combined_usage(parts: Sequence[UsagePart]) -> Usage:
    """Usage of a request with several generations: every completion counts, each
    distinct prompt once (n choices of one prompt read it once, as OpenAI bills it)."""
    prompts: dict[int, tuple[int, int]] = {}
    for part in parts:
        best = prompts.get(part.prompt_index, (part.prompt_tokens, 0))
        prompts[part.prompt_index] = (part.prompt_tokens, max(best[1], part.reused_tokens))
    prompt_total = sum(tokens for tokens, _ in prompts.values())
    cached = sum(reported_cached_tokens(tokens, reused) for tokens, reused in prompts.values())
    completion_total = sum(part.completion_tokens for part in parts)
    return Usage(
        prompt_tokens=prompt_total,
        completion_tokens=completion_total,
        total_tokens=prompt_total + completion_total,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=sum(part.reasoning_tokens for part in parts)
        ),
    )
