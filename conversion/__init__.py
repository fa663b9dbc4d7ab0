"""Pure translation between the wire protocols and the engine.

A package per protocol (wire schemas, request mapping, replies); `turn` is the one
request every chat-style protocol maps onto, `generation` the engine's vocabulary.
Imports neither Litestar nor llama_cpp, so it is fast to unit-test and a different
engine or web layer can reuse it unchanged.
"""
