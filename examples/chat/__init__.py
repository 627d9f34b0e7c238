"""The chat example: ``examples/chat/app.py`` (the server) and ``static/`` (its web page)."""
