"""The soak tool's arithmetic and report (``python -m benchmarks.studies._soak``; the soak itself
runs for tens of minutes and is not part of the tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.studies._soak import MIX, Run, milestones, report, slope_per_10min  # noqa: E402


def test_milestones_are_the_reports_columns() -> None:
    assert milestones(40) == [0, 5, 10, 20, 30, 40]
    assert milestones(12) == [0, 5, 10, 12]
    assert milestones(3) == [0, 3]


def test_slope_is_mib_per_ten_minutes() -> None:
    assert slope_per_10min([(20.0, 100.0), (30.0, 101.0), (40.0, 102.0)]) == 1.0
    assert slope_per_10min([(20.0, 100.0), (40.0, 100.0)]) == 0.0
    assert slope_per_10min([(20.0, 100.0)]) == 0.0


def test_report_has_a_row_per_process_and_the_slope_of_the_second_half() -> None:
    run = Run(minutes=10, rate=100, stores="sqlite")
    run.idle_rss = {"master": 100.0, "worker 1": 120.0}
    for minute in range(11):
        run.samples.append(
            {"t_min": float(minute), "rss": {"master": 100.0, "worker 1": 150.0 + minute}}
        )
        run.load.append((float(minute), 3.0))
    run.pids = {"master": [1], "worker 1": [2]}
    run.tally.sent.update({"protected": 900, "login": 10})
    run.tally.failed.update({"login": 1})
    text = report(run, argparse.Namespace(sample=30.0))
    assert "| master (pid 1) | 100.0 | 100.0 | 100.0 | 100.0 | +0.00 | +0.0 |" in text
    assert "| worker 1 (pid 2) | 120.0 | 150.0 | 155.0 | 160.0 | +10.00 | +5.0 |" in text
    assert "910 HTTP (1 failed)" in text
    assert all(f"| {name} |" in text for name in MIX)
