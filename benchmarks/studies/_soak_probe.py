"""Installed by a ``sitecustomize`` that ``benchmarks.studies._soak`` writes into its run's
work directory and puts first on the server's ``PYTHONPATH``: loaded into the processes
of the server the soak starts, and nothing else. It is not part of the product.

Each process (the master, the preloaded process and every worker forked from it) runs
one daemon thread that waits for the soak tool to touch ``$SOAK_PROBE_DIR/dump``; it then
writes ``<pid>-<n>.json``: the live objects by type, the containers and
``functools.lru_cache`` sizes reachable from module globals through the app's objects,
and, with ``SOAK_TRACEMALLOC=1``, the lines that allocated the most since the process's
first dump. The dump holds the GIL for a fraction
of a second (a pause the soak's latencies include, a few times per run).
"""

from __future__ import annotations

import os

_DIR = os.environ.get("SOAK_PROBE_DIR")
#: Where the app's own state lives: objects of these packages are walked into.
_OWN = ("quart_app", "quart.", "quart_rate_limiter", "hypercorn", "limits")


def _walk_state() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Containers and lru_caches reachable from module globals through the app's own
    objects (a few levels down). The worker's start-up heap is frozen (GC_FREEZE), so
    ``gc.get_objects()`` does not list what was made before it: the app, its manager,
    its stores and the dicts they hold."""
    import collections
    import functools
    import sys

    sized = (dict, list, set, collections.OrderedDict, collections.deque, collections.Counter)
    kept = (functools._lru_cache_wrapper, *sized)
    seen: set[int] = set()
    found: list[dict[str, object]] = []
    lru: list[dict[str, object]] = []

    def visit(value: object, path: str, depth: int) -> None:
        if id(value) in seen or depth > 6:
            return
        seen.add(id(value))
        if isinstance(value, functools._lru_cache_wrapper):
            info = value.cache_info()
            lru.append({"name": path, "size": info.currsize, "max": info.maxsize})
            return
        if isinstance(value, sized):
            if len(value) >= 50:
                found.append({"holder": path, "type": type(value).__name__, "len": len(value)})
            if isinstance(value, dict) and len(value) < 200:
                for key, item in list(value.items()):
                    visit(item, f"{path}[{str(key)[:40]!r}]", depth + 1)
            return
        kind = type(value)
        if isinstance(value, type):
            if value.__module__.startswith(_OWN):
                for key, item in list(vars(value).items()):
                    if isinstance(item, kept):
                        visit(item, f"{path}.{key}", depth + 1)
            return
        if not kind.__module__.startswith(_OWN):
            return
        attrs = getattr(value, "__dict__", None)
        items = list(attrs.items()) if isinstance(attrs, dict) else []
        for slot in getattr(kind, "__slots__", ()):
            if isinstance(slot, str) and hasattr(value, slot):
                items.append((slot, getattr(value, slot)))
        for key, item in items:
            visit(item, f"{path}.{key}", depth + 1)

    for name, module in list(sys.modules.items()):
        if module is None:
            continue
        for key, value in list(vars(module).items()):
            if isinstance(value, kept) or (
                name.startswith(_OWN) and not isinstance(value, type(sys))
            ):
                visit(value, f"{name}.{key}", 1)
    found.sort(key=lambda item: -int(item["len"]))  # type: ignore[call-overload]
    lru.sort(key=lambda item: -int(item["size"]))  # type: ignore[call-overload]
    return found[:80], [item for item in lru if item["size"]][:60]


def _dump(seq: int, state: dict[str, object]) -> None:
    import collections
    import functools
    import gc
    import json
    import sys
    import time

    counts: collections.Counter[str] = collections.Counter()
    lru = []
    for obj in gc.get_objects():
        kind = type(obj)
        counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
        if isinstance(obj, functools._lru_cache_wrapper):
            info = obj.cache_info()
            if info.currsize:
                label = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
                lru.append({"name": label, "size": info.currsize, "max": info.maxsize})
    state_containers, state_lru = _walk_state()
    out: dict[str, object] = {
        "state": state_containers,
        "state_lru": state_lru,
        "pid": os.getpid(),
        "seq": seq,
        "time": time.time(),
        "gc_objects": sum(counts.values()),
        "types": dict(counts.most_common(400)),
        "lru": sorted(lru, key=lambda item: -int(item["size"]))[:40],  # type: ignore[call-overload]
        "modules": len(sys.modules),
    }
    if os.environ.get("SOAK_TRACEMALLOC") == "1":
        import tracemalloc

        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            first = state.setdefault("first", snap)
            stats = snap.compare_to(first, "lineno")  # type: ignore[arg-type]
            out["tracemalloc"] = [
                {"where": str(stat.traceback), "size_diff": stat.size_diff, "count": stat.count}
                for stat in stats[:30]
            ]
    path = os.path.join(_DIR or ".", f"{os.getpid()}-{seq}.json")
    with open(path + ".tmp", "w") as file:
        json.dump(out, file)
    os.replace(path + ".tmp", path)


def _watch() -> None:
    import time

    trigger = os.path.join(_DIR or ".", "dump")
    seen = None
    seq = 0
    state: dict[str, object] = {}
    while True:
        time.sleep(1.0)
        try:
            stamp = os.stat(trigger).st_mtime_ns
        except OSError:
            continue
        if stamp != seen:
            seen = stamp
            try:
                _dump(seq, state)
            except Exception as exc:  # a probe must never end the process
                with open(os.path.join(_DIR or ".", f"{os.getpid()}-error.txt"), "a") as f:
                    f.write(f"{type(exc).__name__}: {exc}\n")
            seq += 1


def _start() -> None:
    import threading

    if os.environ.get("SOAK_TRACEMALLOC") == "1":
        import tracemalloc

        tracemalloc.start(8)
    threading.Thread(target=_watch, name="soak-probe", daemon=True).start()


def install() -> None:
    """Start the watcher here and in every process forked from this one."""
    if _DIR:
        _start()
        os.register_at_fork(after_in_child=_start)
