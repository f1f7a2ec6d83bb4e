"""Figures, the printed table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Measure:
    """One measured phase on one server."""

    count: int  # work units done (messages, commands, searches)
    wall: float  # seconds
    server_cpu: float  # server CPU seconds (user+sys, whole process tree)
    client_cpu: float  # this benchmark process's CPU seconds
    latencies_ms: list[float] = field(default_factory=list)
    check: str = ""  # "" when the answers were verified correct, else what was wrong
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.wall if self.wall > 0 else float("nan")

    @property
    def per_cpu(self) -> float:
        return self.count / self.server_cpu if self.server_cpu > 0 else float("nan")

    def pct(self, p: float) -> float:
        return percentile(self.latencies_ms, p)


@dataclass(slots=True)
class Figure:
    key: str
    label: str
    kind: str  # "rate" (units/s, higher is better) or "latency" (ms, lower is better)
    unit: str  # what a work unit is: "msgs", "searches"
    results: dict[str, Measure] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: Servers deliberately not run for this figure, and why (e.g. past a peer's limit).
    skipped: dict[str, str] = field(default_factory=dict)


def percentile(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "nproc_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return facts


def _fmt(v: float, digits: int = 0) -> str:
    if v != v:  # NaN
        return "-"
    if digits:
        return f"{v:,.{digits}f}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def _ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "-"
    return f"{a / b:.2f}"


#: Below this many server CPU-seconds a per-CPU figure rests on few 10 ms ticks: marked "~".
ROUGH_CPU = 0.2


def _cell(fig: Figure, name: str, value: float, digits: int = 0, per_cpu: bool = False) -> str:
    if name in fig.errors:
        return "FAILED"
    if name in fig.skipped:
        return "not run"
    if name not in fig.results:
        return "-"
    m = fig.results[name]
    mark = "~" if per_cpu and m.server_cpu < ROUGH_CPU else ""
    mark += "" if not m.check else " (!)"
    return _fmt(value, digits) + mark


def render(
    figures: list[Figure], names: list[str], facts: dict[str, Any], servers: dict[str, str]
) -> str:
    cols = ["ours", "dovecot"]
    rows: list[list[str]] = []

    def add(
        label: str,
        fig: Figure,
        get: Callable[[Measure], float],
        digits: int = 0,
        per_cpu: bool = False,
    ) -> None:
        vals = {n: (get(fig.results[n]) if n in fig.results else float("nan")) for n in cols}
        rows.append(
            [
                label,
                *(_cell(fig, n, vals[n], digits, per_cpu) for n in cols),
                _ratio(vals["ours"], vals["dovecot"]),
            ]
        )

    out: list[str] = []
    for title, per_cpu in (("per wall-clock second", False), ("per server CPU-second", True)):
        rows.clear()
        for fig in figures:
            if per_cpu:
                add(f"{fig.label} ({fig.unit}/CPU-s)", fig, lambda m: m.per_cpu, per_cpu=True)
            elif fig.kind == "rate":
                add(f"{fig.label} ({fig.unit}/s)", fig, lambda m: m.rate)
            else:
                add(f"{fig.label} p50 ms", fig, lambda m: m.pct(50), 1)
                add(f"{fig.label} p95 ms", fig, lambda m: m.pct(95), 1)
        out.append(_table(f"Figures {title}", ["figure", *cols, "ratio ours/dovecot"], rows))
    # Where the time went: server and client CPU as a share of the wall time.
    rows.clear()
    for fig in figures:
        cells = [fig.label]
        for n in cols:
            m = fig.results.get(n)
            if n in fig.errors:
                cells.append("FAILED")
            elif n in fig.skipped:
                cells.append("not run")
            elif m is None or m.wall <= 0:
                cells.append("-")
            else:
                cells.append(
                    f"{m.server_cpu / m.wall * 100:.0f}% / {m.client_cpu / m.wall * 100:.0f}%"
                    f" ({m.wall:.1f} s)"
                )
        rows.append(cells)
    out.append(
        _table(
            "CPU use as % of one core: server / bench client (wall time)", ["phase", *cols], rows
        )
    )
    notes = []
    for fig in figures:
        for n, m in fig.results.items():
            if m.check:
                notes.append(f"(!) {n} {fig.label}: {m.check}")
        for n, e in fig.errors.items():
            notes.append(f"FAILED {n} {fig.label}: {e}")
        for n, why in fig.skipped.items():
            notes.append(f"not run: {n} {fig.label}: {why}")
    facts_line = ", ".join(f"{k}={v}" for k, v in facts.items())
    out.append(f"machine: {facts_line}")
    out.append("servers: " + "; ".join(f"{k} {v}" for k, v in servers.items()))
    out.append(
        f"~: server CPU under {ROUGH_CPU} s in that phase (10 ms ticks): rough. "
        "(!): the server's answers were not what the corpus predicts (see below)."
    )
    out.append(
        "ratio: ours/dovecot; for rates and per-CPU figures > 1 means ours does more, "
        "for latencies < 1 means ours answers faster."
    )
    out.extend(notes)
    return "\n\n".join(out[:3]) + "\n\n" + "\n".join(out[3:])


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    sep = "-+-".join("-" * w for w in widths)
    lines = [title, " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), sep]
    for r in rows:
        lines.append(
            " | ".join(
                (c.ljust(w) if i == 0 else c.rjust(w))
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def to_json(
    path: Path,
    section: str,
    figures: list[Figure],
    facts: dict[str, Any],
    servers: dict[str, str],
    params: dict[str, Any],
) -> None:
    data: dict[str, Any] = {
        "section": section,
        "machine": facts,
        "servers": servers,
        "params": params,
        "figures": [],
    }
    for fig in figures:
        entry: dict[str, Any] = {
            "key": fig.key,
            "label": fig.label,
            "kind": fig.kind,
            "unit": fig.unit,
            "errors": fig.errors,
            "skipped": fig.skipped,
            "results": {},
        }
        for n, m in fig.results.items():
            d = asdict(m)
            d["rate_per_s"] = m.rate
            d["per_server_cpu_s"] = m.per_cpu
            if m.latencies_ms:
                d["p50_ms"] = m.pct(50)
                d["p95_ms"] = m.pct(95)
                d["mean_ms"] = statistics.fmean(m.latencies_ms)
            entry["results"][n] = d
        data["figures"].append(entry)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
