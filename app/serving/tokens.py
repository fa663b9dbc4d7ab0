"""`/tokenize` and `/detokenize`: counting and reading tokens without generating.

`/tokenize` with `messages` maps its body with the chat request's own mapping, checks
and renders it as `start_turn` would (`app.serving.prompt.turn_prompt`): tools, tool
choice, reasoning effort, template variables and a structured reply's opened thinking
all count, so its `count` equals that chat request's `usage.prompt_tokens`. With
`content` the chat fields mean nothing and are ignored, as unknown fields are.
"""

from __future__ import annotations

import anyio
from msgspec import UNSET

from app.engine.base import Engine
from app.serving.prompt import turn_prompt
from config.settings import Settings
from conversion.chat.requests import to_turn
from conversion.errors import InvalidRequestError
from conversion.tokens import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)

__all__ = ("detokenize", "tokenize")


async def tokenize(body: TokenizeRequest, engine: Engine, settings: Settings) -> TokenizeResponse:
    """Tokens of `content`, or of `messages` rendered as a chat completion would."""
    if (body.content is UNSET) == (body.messages is UNSET):
        raise InvalidRequestError("Send exactly one of `content` and `messages`.", param="content")
    if body.messages is not UNSET:
        turn = to_turn(body, body.messages, settings.sampling, settings.limits)
        tokens = (await turn_prompt(engine, turn, settings, fit=False)).prompt.tokens
    else:
        text, special = body.content, body.add_special
        assert isinstance(text, str)
        tokens = await anyio.to_thread.run_sync(
            lambda: engine.tokenize_text(text, add_special=special)
        )
    return TokenizeResponse(tokens=tokens, count=len(tokens), model=engine.model_id)


async def detokenize(body: DetokenizeRequest, engine: Engine) -> DetokenizeResponse:
    content = await anyio.to_thread.run_sync(engine.detokenize, body.tokens)
    return DetokenizeResponse(content=content, model=engine.model_id)
