"""Studies whose conclusion is recorded in ``benchmarks/results/``: rerun them to check it.

Each module's name starts with an underscore, so ``locust -f benchmarks`` (which imports
every ``.py`` file below the folder whose name does not) never loads them and the runner's
smoke run never starts them. Run one as ``python -m benchmarks.studies._<name>``.
"""
