"""What the app puts between the server and its views: the ASGI layers it wraps itself
in, its WebSocket connection class and its JSON responses. Nothing here imports the
server (``quart_app.serving``)."""
