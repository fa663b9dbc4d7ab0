"""LLM Service: an OpenAI-compatible server for GGUF models on llama-cpp-python.

`create_app` is exported here so that `litestar run` finds it by autodiscovery.
"""

from app.main import create_app

__all__ = ("create_app",)
