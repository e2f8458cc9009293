"""Benchmarks for quart_app: the Locust suite, the Flask baseline, peers and the runner.

Every ``.py`` file here without a leading underscore is imported by ``locust -f benchmarks``
as a locustfile, so modules other than ``locustfile.py`` keep their import side-effect free
and import heavy dependencies lazily.
"""
