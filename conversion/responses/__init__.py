"""OpenAI Responses API (`/v1/responses`): wire schemas, input items, output and events."""
