"""The chat API: saved chats with personas (``/api/v1/chat/*``)."""
