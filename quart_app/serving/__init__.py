"""What faces Hypercorn: the supervisor, worker start-up and drain, the accept loop, the
ASGI middleware for connection handling, and guards for Hypercorn bugs.

``python -m quart_app.serving`` (the supervisor) runs Hypercorn's own workers. The app
imports only the pieces it installs on itself (middleware, the worker lifecycle hooks).
"""
