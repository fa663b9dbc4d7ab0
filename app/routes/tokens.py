"""`POST /tokenize` and `POST /detokenize`: HTTP only; the logic is in `app.serving.tokens`.

Outside /v1 (as in llama.cpp's server), but behind the same API keys as /v1.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from app.errors import error_responses
from app.models.registry import ModelRouter
from app.routes.served import serve
from app.routes.unknown_fields import log_unknown_fields
from app.serving import tokens
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
    models: NamedDependency[ModelRouter],
) -> TokenizeResponse:
    """Tokens of `content`, or of `messages` (with any other field of a chat completion
    request that shapes its prompt: `tools`, `tool_choice`, `reasoning_effort`,
    `chat_template_kwargs`, `response_format`) rendered as that request would be: the
    count equals its `usage.prompt_tokens`."""
    await log_unknown_fields(request, _KNOWN_FIELDS)
    served = await serve(models, request, data.model)
    return await tokens.tokenize(data, served.engine, served.settings)


@post("/detokenize", status_code=HTTP_200_OK, responses=error_responses(400, 401, 413, 503))
async def detokenize(
    request: Request[Any, Any, Any],
    data: JSONBody[DetokenizeRequest],
    models: NamedDependency[ModelRouter],
) -> DetokenizeResponse:
    """Text of `tokens` in the vocabulary of the model `model` names."""
    served = await serve(models, request, data.model)
    return await tokens.detokenize(data, served.engine)
