"""The runner's PNG: one row per scenario, throughput on the left, latency on the right.

Bars are horizontal, so every row's label (target, variant, load tool) is readable however
many there are. Each unit has its own axis: /protected requests a second at the bottom,
logins a second (the storm rows) at the top in another colour, latency in ms on the
right. An axis whose values span more than 20x is logarithmic, so the small bars stay
visible (the in-process micro-benchmarks span 2 µs to 60 ms). Black dots are the
individual rounds; the legend says so. Each figure is written right of its bar and of
every dot of its row, never over them, with room kept at the axis' end.
``python -m benchmarks.chart REPORT.md`` redraws the chart of a report already written
(its tables hold every figure the chart shows).
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from benchmarks.report import Summary

#: A value range wider than this gets a log axis.
LOG_SPAN = 20.0
LOGIN_ROWS = "/login storm"
ROW_INCHES = 0.34
REQUESTS, LOGINS, P50, P99 = "tab:blue", "tab:green", "#9ecae1", "tab:orange"


def _log_if_wide(axis: Any, values: list[float]) -> None:
    from matplotlib.ticker import NullFormatter

    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > LOG_SPAN:
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # decades only: no label pile-up


def _figure(axis: Any, x: float, y: float, text: str, **style: Any) -> None:
    """``text`` a few points right of ``x`` (the bar's end or its rightmost dot)."""
    axis.annotate(
        text, (x, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7, **style
    )


def _room(axis: Any, rightmost: float) -> None:
    """Widen the axis so a figure written right of ``rightmost`` stays inside it."""
    if rightmost <= 0:
        return
    if axis.get_xscale() == "log":
        axis.set_xlim(right=rightmost * 4)
    else:
        axis.set_xlim(0, rightmost * 1.15)


def _label(summary: Summary) -> str:
    return f"{summary.target} {summary.variant} ({summary.tool})"


def _title(axis: Any, text: str) -> None:
    axis.set_title("\n".join(textwrap.wrap(text, 70)), fontsize=9, loc="left")


def _throughput(axis: Any, group: list[Summary]) -> None:
    ys = list(range(len(group)))
    logins = [s.variant == LOGIN_ROWS for s in group]
    requests = [0.0 if is_login else s.rps for s, is_login in zip(group, logins, strict=True)]
    axis.barh(ys, requests, color=REQUESTS)
    axis.set_xlabel("requests/s", fontsize=8)
    _log_if_wide(axis, [r for r in requests if r])
    rightmost = 0.0
    for y, s, is_login in zip(ys, group, logins, strict=True):
        if is_login:
            continue
        if s.rps_rounds:
            axis.plot(s.rps_rounds, [y] * len(s.rps_rounds), "k.", markersize=4)
        end = max([s.rps, *s.rps_rounds])
        rightmost = max(rightmost, end)
        _figure(axis, end, y, f"{s.rps:,.0f}")
    _room(axis, rightmost)
    if any(logins):
        top = axis.twiny()
        rates = [s.rps if is_login else 0.0 for s, is_login in zip(group, logins, strict=True)]
        top.barh(ys, rates, color=LOGINS)
        for y, rate in zip(ys, rates, strict=True):
            if rate:
                _figure(top, rate, y, f"{rate:,.0f}", color=LOGINS)
        _room(top, max(rates))
        top.set_xlabel("logins/s", fontsize=8, color=LOGINS)
        top.tick_params(axis="x", labelsize=7, colors=LOGINS)
    axis.set_yticks(ys, [_label(s) for s in group], fontsize=7)
    axis.invert_yaxis()
    axis.tick_params(axis="x", labelsize=7)


def _latency(axis: Any, group: list[Summary]) -> None:
    ys = list(range(len(group)))
    height = 0.4
    axis.barh([y - height / 2 for y in ys], [s.p50_ms for s in group], height, color=P50)
    axis.barh([y + height / 2 for y in ys], [s.p99_ms for s in group], height, color=P99)
    _log_if_wide(axis, [s.p50_ms for s in group] + [s.p99_ms for s in group])
    axis.set_yticks(ys, [""] * len(group))
    axis.invert_yaxis()
    axis.set_xlabel("latency, ms", fontsize=8)
    axis.tick_params(axis="x", labelsize=7)


def _micro(axis: Any, rows: list[dict[str, Any]]) -> None:
    ok = [r for r in rows if r.get("us") is not None]
    ys = list(range(len(ok)))
    values = [float(r["us"]) for r in ok]
    axis.barh(ys, values, color="tab:purple")
    for y, value in zip(ys, values, strict=True):
        _figure(axis, value, y, f"{value:,.1f}")
    axis.set_yticks(ys, [r["name"] for r in ok], fontsize=7)
    axis.invert_yaxis()
    _log_if_wide(axis, values)
    _room(axis, max(values, default=0.0))
    axis.set_xlabel("CPU µs per operation (in-process)", fontsize=8)
    axis.tick_params(axis="x", labelsize=7)


def _legend(fig: Any, title: str) -> None:
    """The title, and under it one key for every panel."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    keys = [
        (Patch(color=REQUESTS), "requests/s (bottom axis)"),
        (Patch(color=LOGINS), "logins/s of the storm (top axis)"),
        (Line2D([], [], color="k", marker=".", linestyle=""), "one round (bar: median)"),
        (Patch(color=P50), "latency p50"),
        (Patch(color=P99), "latency p99"),
    ]
    fig.legend(
        [h for h, _ in keys],
        [n for _, n in keys],
        loc="outside upper center",
        ncols=len(keys),
        fontsize=8,
        frameon=False,
        title=title,
        title_fontsize=11,
    )


def draw_chart(
    path: Path,
    scenarios: list[tuple[str, str, str]],
    summaries: list[Summary],
    micro: list[dict[str, Any]],
    title: str,
) -> Path:
    """Write the chart of ``summaries`` (and the ``micro`` rows) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(key, text) for key, text, _ in scenarios]
    sizes = [
        len(micro) if key == "verify-micro" else sum(s.scenario == key for s in summaries)
        for key, _ in rows
    ]
    heights = [1.4 + ROW_INCHES * max(1, n) for n in sizes]
    fig, axes = plt.subplots(
        len(rows),
        2,
        figsize=(15, sum(heights) + 0.6),
        squeeze=False,
        constrained_layout=True,
        gridspec_kw={"height_ratios": heights, "width_ratios": [3, 2]},
    )
    _legend(fig, title)
    for (key, text), (left, right) in zip(rows, axes, strict=True):
        _title(left, f"{key}: {text}")
        if key == "verify-micro":
            _micro(left, micro)
            right.axis("off")
            continue
        group = [s for s in summaries if s.scenario == key]
        if not group:
            left.text(0.5, 0.5, "no rows (skipped or failed: see REPORT.md)", ha="center")
            left.axis("off")
            right.axis("off")
            continue
        _throughput(left, group)
        _latency(right, group)
        right.set_title("latency", fontsize=9, loc="left")
    # The scenario keys travel in the PNG's metadata, so a test can check the chart's rows.
    fig.savefig(
        path, dpi=90, metadata={"Description": "scenarios: " + ", ".join(k for k, _ in rows)}
    )
    plt.close(fig)
    return path


def _number(text: str) -> float:
    return float(text.replace(",", "") or 0)


def from_report(report: Path) -> tuple[list[tuple[str, str, str]], list[Summary], list[Any], str]:
    """What ``draw_chart`` needs, read back from a REPORT.md the runner wrote."""
    lines = report.read_text(encoding="utf-8").splitlines()
    machine = dict(re.findall(r"^- \*\*([^*]+)\*\*: (.*)$", "\n".join(lines), re.M))
    scenarios = [
        (m.group(1), m.group(2), m.group(3))
        for m in (re.match(r"^- \*\*([\w-]+)\*\* \((.*)\): (.*)$", line) for line in lines)
        if m
    ]
    summaries, micro = [], []
    section = ""
    for line in lines:
        if line.startswith("## "):
            section = line[3:]
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if section == "Results" and len(cells) >= 11 and cells[4].isdigit():
            rounds = [_number(r) for r in cells[10].split(" / ") if r]
            summaries.append(
                Summary(
                    *(cells[0], cells[1], cells[2], cells[3], int(cells[4]), len(rounds)),
                    *(_number(cells[5]), _number(cells[6]), _number(cells[7])),
                    0,
                    rounds,
                    {},
                    {},
                )
            )
        elif section.startswith("Verification") and len(cells) == 3 and cells[1][:1].isdigit():
            micro.append({"name": cells[0], "us": _number(cells[1])})
    busy = any(line.startswith("> **The machine was busy**") for line in lines)
    title = (
        f"quart_app benchmarks: {machine.get('cores')} cores, {machine.get('cpu')},"
        f" {machine.get('python')} ({machine.get('run', '')}{'; machine busy' if busy else ''})"
    )
    return scenarios, summaries, micro, title


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.chart [REPORT.md]``: redraw the chart beside a report."""
    args = sys.argv[1:] if argv is None else argv
    report = Path(args[0]) if args else Path(__file__).parent / "results" / "REPORT.md"
    scenarios, summaries, micro, title = from_report(report)
    print(draw_chart(report.parent / "chart.png", scenarios, summaries, micro, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
