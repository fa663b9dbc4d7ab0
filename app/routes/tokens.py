"""`POST /tokenize` and `POST /detokenize`: count or inspect tokens without generating.

Outside /v1 (as in llama.cpp's server), but behind the same API keys as /v1.
"""

from __future__ import annotations

import anyio
from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from app.engine.base import Engine
from app.errors import error_responses
from conversion.chat.messages import to_template_messages
from conversion.errors import InvalidRequestError
from conversion.tokens import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)

__all__ = ("detokenize", "tokenize")


@post("/tokenize", status_code=HTTP_200_OK, responses=error_responses(400, 401, 413, 503))
async def tokenize(
    data: JSONBody[TokenizeRequest], engine: NamedDependency[Engine]
) -> TokenizeResponse:
    """Tokens of `content`, or of `messages` rendered as a chat completion would."""
    if isinstance(data.content, str) == isinstance(data.messages, list):
        raise InvalidRequestError("Send exactly one of `content` and `messages`.", param="content")
    if isinstance(data.messages, list):
        messages = to_template_messages(data.messages)
        tokens = (await anyio.to_thread.run_sync(engine.tokenize_chat, messages)).tokens
    else:
        text, special = data.content, data.add_special
        assert isinstance(text, str)
        tokens = await anyio.to_thread.run_sync(
            lambda: engine.tokenize_text(text, add_special=special)
        )
    return TokenizeResponse(tokens=tokens, count=len(tokens), model=engine.model_id)


@post("/detokenize", status_code=HTTP_200_OK, responses=error_responses(400, 401, 413, 503))
async def detokenize(
    data: JSONBody[DetokenizeRequest], engine: NamedDependency[Engine]
) -> DetokenizeResponse:
    content = await anyio.to_thread.run_sync(engine.detokenize, data.tokens)
    return DetokenizeResponse(content=content, model=engine.model_id)
