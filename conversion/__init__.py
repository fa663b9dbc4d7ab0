"""Pure translation between the OpenAI API and the engine.

Imports neither Litestar nor llama_cpp, so it is fast to unit-test and a different
engine or web layer can reuse it unchanged.
"""
