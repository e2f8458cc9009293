"""What faces Hypercorn: the supervisor (``python -m quart_app.serving``), worker start-up
and drain, the accept loop, the HTTP/1.1 parser, and guards for Hypercorn bugs.

The app never imports this package: ``quart_app.asgi`` adds what a worker needs to the
app it builds (:func:`~quart_app.serving.worker_hooks.install_worker_hooks`).
"""
