"""OpenAI legacy completions (`POST /v1/completions`): wire schemas and mapping."""
