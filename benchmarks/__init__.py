"""Benchmarks for quart_app: the Locust suite, the Flask baseline, the runner (with its
peers, report and chart) and the micro benchmark; recorded studies in ``studies/``.

``locust -f benchmarks`` imports every ``.py`` file below this folder whose name has no
leading underscore as a locustfile, so modules other than ``locustfile.py`` keep their
import side-effect free and import heavy dependencies lazily; the studies' names all start
with an underscore, so Locust never loads them.
"""
