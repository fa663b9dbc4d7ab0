"""The engine interface the serving layer uses: prompt tokens + generation params in,
text out.

Small on purpose, so that a batching engine can replace the serial one without
touching routes or conversion. What a generation takes and yields (params, text
deltas, its end) is the engine's vocabulary in `conversion.generation`: plain values,
framed by each protocol's adapter (one JSON body or SSE chunks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from conversion.families import Family
from conversion.generation import GenerationEvent, GenerationParams, TemplateMessage

__all__ = ("ChatPrompt", "Engine", "EngineState", "Generation")

EngineState = Literal["loading", "ready", "failed", "closed"]


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """A rendered, tokenized chat prompt."""

    tokens: list[int]
    stop: tuple[str, ...]
    """Stop strings the chat format itself asks for (besides end-of-generation tokens)."""
    text: str = ""
    """The rendered prompt (whether it opens a thinking block is read from its end)."""


class Generation(Protocol):
    """One submitted request. Iterate its events; `cancel()` stops it within a token.

    Iteration raises the engine's error if generation fails. Leaving the iteration early
    (break, exception, task cancellation) cancels the generation too.
    """

    def events(self) -> AsyncIterator[GenerationEvent]: ...

    def cancel(self) -> None: ...


@runtime_checkable
class Engine(Protocol):
    model_id: str
    """The id clients see in responses and in /v1/models."""
    created: int
    """Unix time the model file was made, for /v1/models."""

    @property
    def state(self) -> EngineState: ...

    def check_ready(self) -> None:
        """Raise the error a request gets while the model is loading, failed or closed."""
        ...

    def queue_depth(self) -> int:
        """Requests waiting for a slot."""
        ...

    def active(self) -> int:
        """Requests generating now."""
        ...

    @property
    def load_seconds(self) -> float:
        """How long loading the model took (0 until loaded)."""
        ...

    def wait_loaded(self) -> EngineState:
        """Block until loading has ended, successfully or not; return the state."""
        ...

    @property
    def context_length(self) -> int:
        """Tokens of context per request (prompt + completion); valid once ready."""
        ...

    @property
    def renders_tools(self) -> bool:
        """The chat template lays out tool definitions and calls itself."""
        ...

    @property
    def family(self) -> Family:
        """The model family its chat template shows: how it reasons and writes calls
        (`conversion.families`); the generic one until the model has loaded."""
        ...

    def tokenize_chat(
        self,
        messages: list[TemplateMessage],
        tools: list[dict[str, Any]] | None = None,
        template_kwargs: dict[str, Any] | None = None,
        suffix: str = "",
    ) -> ChatPrompt:
        """Render messages (and, for a template that `renders_tools`, the tools) with
        the model's chat template, passing it `template_kwargs` (e.g. `enable_thinking`),
        add `suffix` to the text, and tokenize it once.

        Blocking (call it in a worker thread); safe to run while a generation is going on.
        """
        ...

    def tokenize_text(self, text: str, *, add_special: bool) -> list[int]:
        """Tokens of raw text (special-token text becomes special tokens). Blocking."""
        ...

    def detokenize(self, tokens: list[int]) -> str:
        """Text of tokens; `InvalidRequestError` for ids outside the vocabulary."""
        ...

    @property
    def embedding_size(self) -> int | None:
        """Dimensions of the vectors `embed` returns; None until loaded, or when
        embeddings are off. (Never raises: the web framework checks the engine
        against this protocol, reading every property, on each request.)"""
        ...

    def embed(
        self, inputs: list[list[int]], cancelled: Callable[[], bool] = lambda: False
    ) -> list[list[float]]:
        """One unit-length vector per token list (the mean of the model's last hidden
        states), in order. Blocking, one request at a time; runs beside generation.
        Stops early, raising, once `cancelled()` is true (the client left).

        `InvalidRequestError` (naming `input` or `input[i]`) for an empty list, an id
        outside the vocabulary, or an input longer than the context, and when
        embeddings are turned off (`model.embeddings`).
        """
        ...

    def check_params(self, params: GenerationParams) -> GenerationParams:
        """The params to submit, with the grammar built from `json_schema`; an
        `InvalidRequestError` for what only the model can judge (token ids outside the
        vocabulary, a grammar llama.cpp cannot parse). Blocking: a large schema takes
        a while, so run it in a worker thread, once per request, not per choice."""
        ...

    def submit(
        self, prompt: list[int], params: GenerationParams, owner: str | None = None
    ) -> Generation:
        """Queue a generation with params from `check_params`, for `owner` (an API key:
        owners share the queue and the slots fairly); raise `ServerBusyError` when the
        queue is full."""
        ...

    def start(self) -> None:
        """Begin loading the model in the background (state goes loading -> ready)."""
        ...

    def drain(self, grace: float) -> None:
        """Shutting down: refuse new requests, let running ones finish within `grace`
        seconds, then end them with a proper final event."""
        ...

    def close(self) -> None:
        """Stop generating, fail waiting requests, free the model."""
        ...
