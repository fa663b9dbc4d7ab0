"""Anthropic's Messages API (`/v1/messages`): wire schemas, request mapping, replies and events."""
