"""Apps measured beside quart_app: the best-peer FastAPI app and a bench-only Quart wrapper."""
