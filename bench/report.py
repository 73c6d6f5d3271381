"""The results: a console table while the run goes, and bench/results.md at its end."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.load import LoadResult

# (query, title, is a write, server, floor, rows written per side, one request alone (s))
Row = tuple[str, str, bool, LoadResult, LoadResult, dict[str, int], tuple[float, float]]


@dataclass
class Statements:
    """SQL statements per request, by query key (server also has the page-size variants)."""

    server: dict[str, int]
    floor: dict[str, int]

    def cell(self, key: str) -> str:
        server, floor = self.server.get(key), self.floor.get(key)
        if server is None:
            return "?"
        return str(server) if floor in (None, server) else f"{server} (floor {floor})"

    def page_size_lines(self) -> list[str]:
        """'Q1: 20 → 2, 50 → 2, 100 → 2' per query measured at several page sizes."""
        groups: dict[str, list[tuple[int, int]]] = {}
        for key, count in self.server.items():
            if " first=" in key:
                name, first = key.rsplit(" first=", 1)
                groups.setdefault(name, []).append((int(first), count))
        return [
            f"{name}: " + ", ".join(f"first {n} → {c}" for n, c in sorted(points))
            for name, points in groups.items()
        ]

    def grows_with_page_size(self) -> bool:
        groups: dict[str, set[int]] = {}
        for key, count in self.server.items():
            if " first=" in key:
                groups.setdefault(key.rsplit(" first=", 1)[0], set()).add(count)
        return any(len(counts) > 1 for counts in groups.values())


@dataclass
class Run:
    n: int
    clients: int
    duration: float
    warmup: float
    connections: int
    tool: str
    date: str
    machine: dict[str, str]
    load_before: str
    load_after: str
    seeded_in: float | None
    search: str
    search_matches: int
    measured: list[Row]
    statements: Statements
    rss: dict[str, dict[str, int]]
    flatness: list[tuple[int, dict[str, int]]]
    minutes: float
    # One connection, server only: the latency-targeted queries one request at a time.
    latency: dict[str, LoadResult] = field(default_factory=dict)


def memory(kib: dict[str, int]) -> str:
    """'RSS 212.3 MiB (anon 120.1, file 92.2)': file pages are mostly SQLite's mmap."""
    mib = {k: v / 1024 for k, v in kib.items()}
    return (
        f"RSS {mib.get('VmRSS', 0):.1f} MiB (anon {mib.get('RssAnon', 0):.1f}, "
        f"file {mib.get('RssFile', 0):.1f})"
    )


def _ratio(server: LoadResult, floor: LoadResult) -> float:
    return server.rps / floor.rps if floor.rps else 0.0


def _flags(result: LoadResult) -> str:
    flags = []
    if result.errors:
        flags.append(f"{result.errors} errors")
    if not result.requests:
        flags.append("no answer within the window")
    if result.exhausted:
        flags.append(f"pool ran out after {result.duration_s:.1f} s")
    return f" ({', '.join(flags)})" if flags else ""


COLUMNS = (
    "query",
    "server req/s",
    "p50 ms",
    "p99 ms",
    "floor req/s",
    "p50 ms",
    "p99 ms",
    "ratio",
    "alone ms",
    "SQL/req",
)


def progress_header() -> str:
    return "  " + "".join(f"{c:>13}" if i else f"{c:<10}" for i, c in enumerate(COLUMNS))


def _ms(result: LoadResult, value: float) -> str:
    # No request completed within the window: there is no latency to show.
    return f"{value:.1f}" if result.requests else "—"


def _rate(result: LoadResult) -> str:
    return f"{result.rps:,.1f}" if result.rps < 10 else f"{result.rps:,.0f}"


def _alone(solo: tuple[float, float]) -> str:
    return f"{solo[0] * 1000:.0f} / {solo[1] * 1000:.0f}"


def _cells(
    key: str,
    server: LoadResult,
    floor: LoadResult,
    statements: Statements,
    solo: tuple[float, float],
) -> list[str]:
    return [
        key,
        _rate(server),
        _ms(server, server.p50_ms),
        _ms(server, server.p99_ms),
        _rate(floor),
        _ms(floor, floor.p50_ms),
        _ms(floor, floor.p99_ms),
        f"{_ratio(server, floor):.2f}" if floor.requests else "—",
        _alone(solo),
        statements.cell(key),
    ]


def progress_line(
    key: str,
    server: LoadResult,
    floor: LoadResult,
    statements: Statements,
    written: dict[str, int],
    solo: tuple[float, float],
) -> str:
    cells = _cells(key, server, floor, statements, solo)
    line = "  " + "".join(f"{c:>13}" if i else f"{c:<10}" for i, c in enumerate(cells))
    extra = _flags(server).replace("(", "(server: ") + _flags(floor).replace("(", "(floor: ")
    for side, result in (("server", server), ("floor", floor)):
        if side in written and not result.requests <= written[side] <= result.requests + 64:
            extra += f" [{side}: {result.requests} answers but {written[side]} rows written]"
    return line + extra


def targets(run: Run) -> list[tuple[str, str, bool | None]]:
    """Issue 5's targets against this run: (target, measured, met). Informational: the lead
    measures them at N = 1,000,000."""
    by_key = {row[0]: (row[3], row[4]) for row in run.measured}
    out: list[tuple[str, str, bool | None]] = []
    reads = [(row[0], row[3], row[4]) for row in run.measured if not row[2]]
    answered = [(k, s, f) for k, s, f in reads if s.requests and f.requests]
    unanswered = [k for k, s, f in reads if not (s.requests and f.requests)]
    if answered:
        worst = min(answered, key=lambda r: _ratio(r[1], r[2]))
        below = [k for k, s, f in answered if _ratio(s, f) < 0.35]
        out.append(
            (
                "every read ≥ 0.35 x floor req/s",
                f"lowest {worst[0]} {_ratio(worst[1], worst[2]):.3f}"
                + (f"; below: {', '.join(below)}" if below else "")
                + (f"; no answer in the window: {', '.join(unanswered)}" if unanswered else ""),
                not below and not unanswered,
            )
        )
    views = [(f"{run.connections} connections", {k: v[0] for k, v in by_key.items()})]
    if run.latency:
        views.append(("1 connection", run.latency))
    for view, results in views:
        if "Q3" in results:
            q3 = results["Q3"]
            out.append(
                (
                    f"Q3 search p99 < 30 ms (at 1M), {view}",
                    f"{_ms(q3, q3.p99_ms)} ms",
                    bool(q3.requests) and q3.p99_ms < 30,
                )
            )
        if "Q1" in results and "Q4" in results:
            q1, q4 = results["Q1"], results["Q4"]
            if q1.requests and q4.requests:
                out.append(
                    (
                        f"Q4 p50 ≤ 1.5 x Q1 p50, {view}",
                        f"{q4.p50_ms:.1f} / {q1.p50_ms:.1f} ms = {q4.p50_ms / q1.p50_ms:.2f}",
                        q4.p50_ms <= 1.5 * q1.p50_ms,
                    )
                )
        counted = [k for k in ("Q2+count", "Q3+count") if k in results]
        if counted:
            met = all(results[k].requests and results[k].p50_ms < 50 for k in counted)
            out.append(
                (
                    f"totalCount with a filter p50 < 50 ms, {view}",
                    ", ".join(f"{k} {_ms(results[k], results[k].p50_ms)} ms" for k in counted),
                    met,
                )
            )
    for key, floor_rate in (("Q7", 400), ("Q8", 200)):
        if key in by_key:
            rps = by_key[key][0].rps
            what = "creates" if key == "Q7" else "converts"
            out.append((f"{key} ≥ {floor_rate} {what}/s", f"{rps:,.0f}/s", rps >= floor_rate))
    if len(run.flatness) >= 3:
        (n1, m1), (n2, m2) = run.flatness[1], run.flatness[-1]
        r1, r2 = m1["VmRSS"], m2["VmRSS"]
        a1, a2 = m1.get("RssAnon", 0), m2.get("RssAnon", 0)
        growth = (r2 - r1) / r1 * 100
        out.append(
            (
                f"RSS flat (< 10 % growth) from {n1:,} to {n2:,} requests",
                f"{r1 / 1024:.1f} → {r2 / 1024:.1f} MiB ({growth:+.1f} %; anon "
                f"{a1 / 1024:.1f} → {a2 / 1024:.1f} MiB)",
                growth < 10,
            )
        )
    if any(" first=" in k for k in run.statements.server):
        grows = run.statements.grows_with_page_size()
        out.append(
            (
                "statements per request do not grow with page size",
                "; ".join(run.statements.page_size_lines()),
                not grows,
            )
        )
    return out


def _mark(met: bool | None) -> str:
    return "—" if met is None else ("✓" if met else "✗")


def markdown(run: Run) -> str:
    m = run.machine
    seeded = f"{run.seeded_in:.1f} s" if run.seeded_in is not None else "reused (BENCH_REUSE_DB=1)"
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` on {run.date}: **N = {run.n:,} leads**, {run.clients:,} clients; "
        f"{run.duration:g} s per query and side after a {run.warmup:g} s warm-up, "
        f"{run.connections} connections, closed loop. Seeding took {seeded}.",
        "",
        f"- Machine: {m['cpu']}, {m['nproc']} CPUs (nproc), {m['memory']} RAM, {m['os']}",
        f"- Python {m['python']}, {m['database']}; load tool: {m['load tool']}",
        f"- Load average (1/5/15 min) before: {run.load_before}, after: {run.load_after}"
        " — other work on the machine skews the numbers",
        f"- Code: {m['commit']}",
        "- Server: `server.py serve` (uvicorn, one worker, LOG_LEVEL=warning). Floor: "
        "`bench/floor.py`, a plain Starlette app on the same uvicorn stack running the same "
        "SQL statements through the app's data layer and returning the same JSON, without "
        "GraphQL. Both were checked to answer every query with the same JSON.",
        "",
        "| query | what | server req/s | p50 ms | p99 ms | floor req/s | floor p50 | "
        "floor p99 | ratio | alone ms | SQL/request |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, title, _, server, floor, _, solo in run.measured:
        c = _cells(key, server, floor, run.statements, solo)
        notes = _flags(server).replace("(", "(server: ") + _flags(floor).replace("(", "(floor: ")
        lines.append(f"| {c[0]} | `{title}`{notes} | {' | '.join(c[1:])} |")
    lines += [
        "",
        f"Q3 searches {run.search!r}, a substring of company names ({run.search_matches:,} "
        "matching leads). Q4 starts after a cursor half-way through the leads (newest first). "
        "Q5 cycles through 1,000 converted leads. Q7 creates leads with unique emails; Q8 "
        "converts a different lead on every request (each side its own pool). "
        "`+count` adds `totalCount`. Ratio: server req/s ÷ floor req/s. Alone: one request "
        "with nothing else running, server / floor (during the JSON check). SQL/request: "
        "statements one request runs (transaction control not counted), counted in-process "
        "with a `before_cursor_execute` listener.",
        "",
        f"**Server memory after the run: {memory(run.rss.get('server after', {}))}**; before "
        f"it: {memory(run.rss.get('server before', {}))}; the floor's after: "
        f"{memory(run.rss.get('floor after', {}))}. Anon is the process's own memory; file "
        "pages are mostly SQLite's memory map of the database (SQLITE_MMAP_SIZE), which grows "
        "with the part of the file that was read.",
    ]
    if run.flatness:
        points = "; ".join(f"after {n:,}: {memory(kib)}" for n, kib in run.flatness)
        lines += [
            "",
            f"A fresh server's memory by requests of Q1 served (bundled client): {points}.",
        ]
    if run.latency:
        lines += [
            "",
            "One request at a time (one connection, server only; the latency targets are about "
            "how one user's page feels, while at "
            f"{run.connections} connections p50 is mostly queueing, ≈ {run.connections} ÷ "
            "req/s):",
            "",
            "| query | req/s | p50 ms | p99 ms |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {k} | {_rate(r)} | {_ms(r, r.p50_ms)} | {_ms(r, r.p99_ms)} |"
            for k, r in run.latency.items()
        ]
    page = run.statements.page_size_lines()
    if page:
        lines += ["", "Statements by page size: " + "; ".join(page) + "."]
    lines += [
        "",
        "## Targets of issue 5 (informational)",
        "",
        "| target | this run | met |",
        "| --- | --- | :---: |",
    ]
    lines += [f"| {t} | {v} | {_mark(ok)} |" for t, v, ok in targets(run)]
    lines += ["", f"The whole run took {run.minutes:.1f} minutes.", ""]
    return "\n".join(lines)


def console(run: Run) -> str:
    lines = [
        f"N = {run.n:,}; {run.machine['nproc']} CPUs; {run.machine['load tool']}",
        progress_header(),
    ]
    for key, _, _, server, floor, written, solo in run.measured:
        lines.append(progress_line(key, server, floor, run.statements, written, solo))
    lines.append(f"Server memory after the run: {memory(run.rss.get('server after', {}))}")
    lines += [f"  {_mark(ok)} {t}: {v}" for t, v, ok in targets(run)]
    return "\n".join(lines)
