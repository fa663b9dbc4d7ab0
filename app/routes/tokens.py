"""`POST /tokenize` and `POST /detokenize`: HTTP only; the logic is in `app.serving.tokens`.

Outside /v1 (as in llama.cpp's server), but behind the same API keys as /v1.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from app.engine.base import Engine
from app.errors import error_responses
from app.routes.unknown_fields import log_unknown_fields
from app.serving import tokens
from config.settings import Settings
from conversion.tokens import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)

__all__ = ("detokenize", "tokenize")

_KNOWN_FIELDS = frozenset(TokenizeRequest.__struct_fields__)


@post("/tokenize", status_code=HTTP_200_OK, responses=error_responses(400, 401, 413, 503))
async def tokenize(
    request: Request[Any, Any, Any],
    data: JSONBody[TokenizeRequest],
    engine: NamedDependency[Engine],
    settings: NamedDependency[Settings],
) -> TokenizeResponse:
    """Tokens of `content`, or of `messages` (with any other field of a chat completion
    request that shapes its prompt: `tools`, `tool_choice`, `reasoning_effort`,
    `chat_template_kwargs`, `response_format`) rendered as that request would be: the
    count equals its `usage.prompt_tokens`."""
    await log_unknown_fields(request, _KNOWN_FIELDS)
    return await tokens.tokenize(data, engine, settings)


@post("/detokenize", status_code=HTTP_200_OK, responses=error_responses(400, 401, 413, 503))
async def detokenize(
    data: JSONBody[DetokenizeRequest], engine: NamedDependency[Engine]
) -> DetokenizeResponse:
    return await tokens.detokenize(data, engine)
