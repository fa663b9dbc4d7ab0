"""OpenAI chat completions: wire schemas, request mapping, messages, replies."""
