"""Imported last by the supervisor's preloaded process (multiprocessing's forkserver),
after the app's modules: their objects are moved out of the garbage collector's scans
there, once, so that each worker forked from it starts with them frozen.

A worker freezes its start-up heap anyway (``GC_FREEZE``, quart_app/serving/worker_hooks.py);
its full collection then walks only what it made itself, not every object of Quart,
SQLAlchemy and pydantic again (that collection was half a replacement worker's start-up
here). The frozen pages also stay shared with the preloaded process (copy-on-write)
instead of being written to by each collection.
"""

from __future__ import annotations

import gc

gc.collect()
gc.freeze()
