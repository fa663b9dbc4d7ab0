"""Thin HTTP handlers. `V1_ROUTES` are mounted under /v1."""

from app.routes.anthropic import count_message_tokens, messages
from app.routes.chat import chat_completions
from app.routes.completions import completions
from app.routes.embeddings import create_embeddings
from app.routes.health import health
from app.routes.metrics import metrics
from app.routes.model_admin import load_model, pull_model, unload_model
from app.routes.models import get_model, list_models
from app.routes.responses import create, delete_response, list_input_items, retrieve
from app.routes.tokens import detokenize, tokenize

__all__ = ("ADMIN_ROUTES", "TOKEN_ROUTES", "V1_ROUTES", "health", "metrics")

V1_ROUTES = (
    chat_completions,
    completions,
    create_embeddings,
    list_models,
    get_model,
    create,
    retrieve,
    delete_response,
    list_input_items,
    messages,
    count_message_tokens,
)
TOKEN_ROUTES = (tokenize, detokenize)
"""Outside /v1, but behind the API keys like it."""
ADMIN_ROUTES = (load_model, unload_model, pull_model)
"""Loading and unloading models by hand: outside /v1, behind the API keys."""
