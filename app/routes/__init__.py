"""Thin HTTP handlers. `V1_ROUTES` are mounted under /v1."""

from app.routes.chat import chat_completions
from app.routes.health import health
from app.routes.metrics import metrics
from app.routes.models import get_model, list_models

__all__ = ("V1_ROUTES", "health", "metrics")

V1_ROUTES = (chat_completions, list_models, get_model)
