"""Serving logic behind the routes: chat and legacy completions, one or many choices."""

from app.serving.chat import create_chat_completion
from app.serving.completions import create_completion

__all__ = ("create_chat_completion", "create_completion")
