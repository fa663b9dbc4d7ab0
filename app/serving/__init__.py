"""Serving logic behind the routes (which stay HTTP only): each protocol's adapter over
the shared turn core (`turns`, `prompt`), legacy completions, embeddings and tokens."""

from app.serving.chat import create_chat_completion
from app.serving.completions import create_completion

__all__ = ("create_chat_completion", "create_completion")
