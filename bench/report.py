"""The results: progress lines while the run goes, and bench/results.md at its end.

Every number of a side is the median over the run's rounds (BENCH_ROUNDS); the rounds' own
req/s are listed too, so that noise shows.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import LoadResult

# The sides, in the order the tables show them.
SIDE_TITLES = {
    "server": "server",
    "nolog": "no log",
    "server2": "2 workers",
    "floor": "app floor",
    "raw": "raw floor",
    "framework": "framework floor",
    "write": "write floor",
    "peer": "peer",
}


# Sections other tools write into results.md (bench/webhooks.py), each between these markers:
# a run of the main benchmark carries them over.
_BLOCK = re.compile(r"<!-- begin (\S+) -->.*?<!-- end \1 -->\n?", re.DOTALL)


def with_blocks(text: str, previous: Path) -> str:
    """``text``, followed by the marked blocks of the ``previous`` results file."""
    old = previous.read_text() if previous.exists() else ""
    blocks = [m.group(0).rstrip() + "\n" for m in _BLOCK.finditer(old)]
    return "\n".join([text.rstrip() + "\n", *blocks])


def side_title(side: str) -> str:
    if side in SIDE_TITLES:
        return SIDE_TITLES[side]
    return f"{side.removeprefix('server')} workers" if side.startswith("server") else side


@dataclass
class Statements:
    """SQL statements per request, by query key (server also has the page-size variants;
    nolog: the server with EVENT_LOG=false, for the writes)."""

    server: dict[str, int]
    floor: dict[str, int]
    nolog: dict[str, int] = field(default_factory=dict)

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
class Cell:
    """One query on one side, over the rounds."""

    results: list[LoadResult] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # CPU seconds over each measured window
    written: list[int] = field(default_factory=list)  # writes: rows each measured run changed

    def add(self, result: LoadResult, cpu: float) -> None:
        self.results.append(result)
        self.cpu.append(cpu)

    def _median(self, value: Callable[[LoadResult], float]) -> float:
        answered = [value(r) for r in self.results if r.requests]
        return statistics.median(answered) if answered else 0.0

    @property
    def answered(self) -> bool:
        return any(r.requests for r in self.results)

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.results) if self.results else 0.0

    @property
    def p50_ms(self) -> float:
        return self._median(lambda r: r.p50_ms)

    @property
    def p99_ms(self) -> float:
        return self._median(lambda r: r.p99_ms)

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds of the side's processes per request answered (median of rounds)."""
        per = [
            c / r.requests * 1000 for c, r in zip(self.cpu, self.results, strict=True) if r.requests
        ]
        return statistics.median(per) if per else 0.0

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    @property
    def exhausted(self) -> bool:
        return any(r.exhausted for r in self.results)


@dataclass
class QueryRun:
    key: str
    title: str
    write: bool
    sides: dict[str, Cell]
    solo: dict[str, float]  # one request alone (s), by side

    def rps(self, side: str) -> float | None:
        cell = self.sides.get(side)
        return cell.rps if cell is not None and cell.answered else None

    def ratio(self, side: str, other: str) -> float | None:
        a, b = self.rps(side), self.rps(other)
        return a / b if a is not None and b else None


@dataclass
class EngineRun:
    engine: str  # "postgresql" or "sqlite"
    database: str  # "PostgreSQL 16.4"
    url: str
    n: int
    clients: int
    seeded_in: float | None
    search: str
    search_matches: int
    queries: list[QueryRun]
    statements: Statements
    rss: dict[str, dict[str, int]]
    flatness: list[tuple[int, dict[str, int]]]
    # side -> query -> one connection, one request at a time
    latency: dict[str, dict[str, LoadResult]] = field(default_factory=dict)
    peer_note: str = ""  # why there is no peer

    @property
    def title(self) -> str:
        return "PostgreSQL" if self.engine == "postgresql" else "SQLite"

    def query(self, key: str) -> QueryRun | None:
        return next((q for q in self.queries if q.key == key), None)

    def sides(self) -> list[str]:
        seen: list[str] = []
        for q in self.queries:
            seen += [s for s in q.sides if s not in seen]
        order = list(SIDE_TITLES)
        return sorted(seen, key=lambda s: (order.index(s) if s in order else len(order), s))


@dataclass
class Run:
    duration: float
    warmup: float
    connections: int
    rounds: int
    tool: str
    date: str
    machine: dict[str, str]
    load_before: str
    load_after: str
    engines: list[EngineRun]
    minutes: float

    def engine(self, name: str) -> EngineRun | None:
        return next((e for e in self.engines if e.engine == name), None)


def memory(kib: dict[str, int]) -> str:
    """'RSS 212.3 MiB (anon 120.1, file 92.2)': file pages are mostly SQLite's mmap."""
    mib = {k: v / 1024 for k, v in kib.items()}
    return (
        f"RSS {mib.get('VmRSS', 0):.1f} MiB (anon {mib.get('RssAnon', 0):.1f}, "
        f"file {mib.get('RssFile', 0):.1f})"
    )


def _rate(rps: float | None) -> str:
    if rps is None:
        return "—"
    return f"{rps:,.1f}" if rps < 10 else f"{rps:,.0f}"


def _x(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}"


def _ms(value: float, answered: bool = True) -> str:
    if not answered:
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _flags(side: str, cell: Cell) -> str:
    flags = []
    if cell.errors:
        flags.append(f"{cell.errors} errors")
    if not cell.answered:
        flags.append("no answer within the window")
    if cell.exhausted:
        flags.append("pool ran out")
    return f"{side_title(side)}: {', '.join(flags)}" if flags else ""


def _writes_note(side: str, cell: Cell) -> str:
    """A write whose rows in the database disagree with the answers counted."""
    for result, written in zip(cell.results, cell.written, strict=False):
        if not result.requests <= written <= result.requests + 64:
            return f"{side_title(side)}: {result.requests} answers but {written} rows written"
    return ""


# ------------------------------------------------------------------ progress


def progress_line(r: int, key: str, cells: dict[str, Cell]) -> str:
    parts = []
    for side, cell in cells.items():
        last = cell.results[-1]
        cpu = cell.cpu[-1] / last.requests * 1000 if last.requests else 0.0
        text = f"{side} {_rate(last.rps)} ({cpu:.2f} ms CPU)"
        if last.errors:
            text += f" [{last.errors} errors]"
        parts.append(text)
    return f"  round {r + 1} {key:<9} " + ", ".join(parts)


# ------------------------------------------------------------------ targets


Target = tuple[str, str, bool | None]


def _vs(e: EngineRun, key: str, side: str, other: str, at_least: float) -> Target | None:
    q = e.query(key)
    if q is None or other not in q.sides:
        return None
    ratio = q.ratio(side, other)
    what = f"{key} {side_title(side)} ≥ {at_least:.1f} x {side_title(other)}"
    if ratio is None:
        return (what, "no answer", False)
    value = f"{_rate(q.rps(side))} / {_rate(q.rps(other))} req/s = {ratio:.2f}"
    framework = q.ratio("framework", other)
    if side == "server" and framework is not None:
        # The bound: vanilla Strawberry on the same stack, the same document, no database.
        value += (
            f" (framework floor, no database: {_rate(q.rps('framework'))} / "
            f"{_rate(q.rps(other))} = {framework:.2f})"
        )
    return (what, value, ratio >= at_least)


def _framework_vs_raw(reads: list[QueryRun]) -> str:
    """'; framework floor ÷ raw floor: Q1 0.37, lowest Q6 0.30' (the bound Strawberry sets)."""
    ratios = [(q.key, r) for q in reads if (r := q.ratio("framework", "raw")) is not None]
    if not ratios:
        return ""
    first = ratios[0]
    worst = min(ratios, key=lambda kr: kr[1])
    text = f"; framework floor (no database) ÷ raw floor: {first[0]} {first[1]:.2f}"
    if worst != first:
        text += f", lowest {worst[0]} {worst[1]:.2f}"
    return text


def issue9_targets(run: Run) -> list[Target]:
    """Issue 9's targets against this run (the lead measures them at N = 1,000,000)."""
    out: list[Target] = []
    pg, lite = run.engine("postgresql"), run.engine("sqlite")
    if pg is not None:
        if "peer" not in pg.sides():
            out.append(("PostGraphile peer ratios", f"not measured: {pg.peer_note}", None))
        q2 = "Q2+count" if pg.query("Q2+count") else "Q2"
        for key, side, at_least in (
            ("Q1", "server", 0.6),
            ("Q4", "server", 0.6),
            ("Q1", "server2", 1.0),
            ("Q4", "server2", 1.0),
            (q2, "server", 1.0),
            ("Q3", "server", 1.5),
        ):
            target = _vs(pg, key, side, "peer", at_least)
            if target is not None:
                out.append(target)
    for e in run.engines:
        one = e.latency.get("server", {}).get("Q1")
        if one is not None:
            peer = e.latency.get("peer", {}).get("Q1")
            raw = e.latency.get("raw", {}).get("Q1")
            framework = e.latency.get("framework", {}).get("Q1")
            extra = "".join(
                f"; {name} {r.p50_ms:.2f} ms"
                for name, r in (("peer", peer), ("raw floor", raw), ("framework floor", framework))
                if r
            )
            out.append(
                (
                    f"Q1 one connection p50 ≤ 1.2 ms ({e.title})",
                    f"{one.p50_ms:.2f} ms{extra}",
                    bool(one.requests) and one.p50_ms <= 1.2,
                )
            )
    for e in run.engines:
        reads = [q for q in e.queries if not q.write and "raw" in q.sides]
        if reads:
            ratios = [(q.key, q.ratio("server", "raw")) for q in reads]
            known = [(k, r) for k, r in ratios if r is not None]
            below = [k for k, r in ratios if r is None or r < 0.5]
            worst = min(known, key=lambda kr: kr[1]) if known else None
            out.append(
                (
                    f"every read ≥ 0.5 x raw floor, 1 worker ({e.title})",
                    (f"lowest {worst[0]} {worst[1]:.2f}" if worst else "no answer")
                    + (f"; below: {', '.join(below)}" if below else "")
                    + _framework_vs_raw(reads),
                    not below,
                )
            )
    for e in run.engines:
        floors = {"Q7": 800, "Q8": 400} if e.engine == "postgresql" else {"Q7": 600, "Q8": 300}
        for key, at_least in floors.items():
            q = e.query(key)
            if q is not None:
                rps = q.rps("server")
                what = "createLead" if key == "Q7" else "convertLead"
                # The bounds: Strawberry with nothing behind it, and Strawberry + the bare driver.
                bounds = [
                    f"{title} {_rate(floor)}/s"
                    for title, floor in (
                        ("framework floor (no database)", q.rps("framework")),
                        ("write floor (Strawberry + bare driver)", q.rps("write")),
                    )
                    if floor is not None
                ]
                out.append(
                    (
                        f"{key} {what} ≥ {at_least}/s, 1 worker ({e.title})",
                        "; ".join([f"{_rate(rps)}/s", *bounds]),
                        rps is not None and rps >= at_least,
                    )
                )
    if pg is not None and lite is not None:
        pairs = []
        for q in lite.queries:
            other = pg.query(q.key)
            a, b = q.rps("server"), other.rps("server") if other else None
            if a is not None and b:
                pairs.append((q.key, a / b))
        if pairs:
            slower = [f"{k} {r:.3f}" for k, r in pairs if r < 1.0]
            worst = min(pairs, key=lambda kr: kr[1])
            out.append(
                (
                    "SQLite ≥ PostgreSQL, same query, 1 worker",
                    f"lowest {worst[0]} {worst[1]:.2f}"
                    + (f"; slower: {', '.join(slower)}" if slower else ""),
                    not slower,
                )
            )
    return out


def issue10_targets(run: Run) -> list[Target]:
    """Issue 10's write cost of the change-event log: createLead and convertLead with the log
    (the server) against the same server with EVENT_LOG=false (nolog), 1 worker. Judged by the
    median of the rounds' own ratios: in a round the two sides run back to back, while the
    ratio of the two medians may pair rounds minutes apart, and this machine's load drifts
    (both are shown)."""
    out: list[Target] = []
    for e in run.engines:
        for key, what in (("Q7", "createLead"), ("Q8", "convertLead")):
            q = e.query(key)
            if q is None or "nolog" not in q.sides:
                continue
            target = f"{key} {what} with the log ≥ 0.9 x without ({e.title})"
            log, nolog = q.sides["server"], q.sides["nolog"]
            rounds = [
                a.rps / b.rps for a, b in zip(log.results, nolog.results, strict=False) if b.rps
            ]
            ratio = q.ratio("server", "nolog")
            if ratio is None or not rounds:
                out.append((target, "no answer", False))
                continue
            paired = statistics.median(rounds)
            value = (
                f"{paired:.2f}, the median of each round's ratio "
                f"({', '.join(f'{r:.2f}' for r in rounds)}); medians "
                f"{_rate(q.rps('server'))} / {_rate(q.rps('nolog'))} req/s = {ratio:.2f}; "
                f"CPU {log.cpu_ms:.2f} / {nolog.cpu_ms:.2f} ms per request"
            )
            counts = e.statements.server.get(key), e.statements.nolog.get(key)
            if None not in counts:
                value += f"; SQL {counts[0]} / {counts[1]} statements per request"
            out.append((target, value, paired >= 0.9))
    return out


def issue5_targets(e: EngineRun, connections: int) -> list[Target]:
    """Issue 5's targets, per engine (informational)."""
    out: list[Target] = []
    reads = [q for q in e.queries if not q.write]
    ratios = [(q.key, q.ratio("server", "floor")) for q in reads]
    known = [(k, r) for k, r in ratios if r is not None]
    if known:
        worst = min(known, key=lambda kr: kr[1])
        below = [k for k, r in ratios if r is None or r < 0.35]
        out.append(
            (
                "every read ≥ 0.35 x app floor",
                f"lowest {worst[0]} {worst[1]:.3f}"
                + (f"; below: {', '.join(below)}" if below else ""),
                not below,
            )
        )
    loaded = {
        q.key: (q.sides["server"].p50_ms, q.sides["server"].p99_ms)
        for q in e.queries
        if "server" in q.sides and q.sides["server"].answered
    }
    alone = {k: (r.p50_ms, r.p99_ms) for k, r in e.latency.get("server", {}).items() if r.requests}
    for view, values in ((f"{connections} connections", loaded), ("1 connection", alone)):
        if "Q3" in values:
            out.append(
                (
                    f"Q3 search p99 < 30 ms, {view}",
                    f"{values['Q3'][1]:.1f} ms",
                    values["Q3"][1] < 30,
                )
            )
        if "Q1" in values and "Q4" in values and values["Q1"][0]:
            ratio = values["Q4"][0] / values["Q1"][0]
            out.append(
                (
                    f"Q4 p50 ≤ 1.5 x Q1 p50, {view}",
                    f"{values['Q4'][0]:.2f} / {values['Q1'][0]:.2f} ms = {ratio:.2f}",
                    ratio <= 1.5,
                )
            )
        counted = [k for k in ("Q2+count", "Q3+count") if k in values]
        if counted:
            out.append(
                (
                    f"totalCount with a filter p50 < 50 ms, {view}",
                    ", ".join(f"{k} {values[k][0]:.1f} ms" for k in counted),
                    all(values[k][0] < 50 for k in counted),
                )
            )
    if len(e.flatness) >= 3:
        (n1, m1), (n2, m2) = e.flatness[1], e.flatness[-1]
        r1, r2 = m1["VmRSS"], m2["VmRSS"]
        growth = (r2 - r1) / r1 * 100
        out.append(
            (
                f"RSS flat (< 10 % growth) from {n1:,} to {n2:,} requests",
                f"{r1 / 1024:.1f} → {r2 / 1024:.1f} MiB ({growth:+.1f} %)",
                growth < 10,
            )
        )
    if any(" first=" in k for k in e.statements.server):
        out.append(
            (
                "statements per request do not grow with page size",
                "; ".join(e.statements.page_size_lines()),
                not e.statements.grows_with_page_size(),
            )
        )
    return out


def _mark(met: bool | None) -> str:
    return "—" if met is None else ("✓" if met else "✗")


# ------------------------------------------------------------------ results.md


def _table(header: list[str], rows: list[list[str]], align_first: int = 1) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append(
        "| " + " | ".join("---" if i < align_first else "---:" for i in range(len(header))) + " |"
    )
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def engine_section(run: Run, e: EngineRun) -> list[str]:
    sides = e.sides()
    has_peer = "peer" in sides
    has_framework = "framework" in sides
    has_write = "write" in sides
    has_nolog = "nolog" in sides
    workers = [s for s in sides if s.startswith("server") and s != "server"]
    seeded = (
        f"seeding took {e.seeded_in:.1f} s"
        if e.seeded_in is not None
        else "the database of an earlier run (BENCH_REUSE_DB=1)"
    )
    lines = [
        f"## {e.title}",
        "",
        f"{e.database}, `{e.url}`: **N = {e.n:,} leads**, {e.clients:,} clients; {seeded}. "
        "Sides: "
        + ", ".join(side_title(s) for s in sides)
        + "."
        + (f" No peer: {e.peer_note}." if not has_peer else ""),
        "",
    ]
    header = ["query", "what", "server req/s"]
    header += ["no log", "÷ no log"] if has_nolog else []
    header += [f"{side_title(w)}" for w in workers]
    header += ["app floor", "raw floor"] + (["framework floor"] if has_framework else [])
    header += ["write floor"] if has_write else []
    header += ["peer"] if has_peer else []
    header += ["÷ raw"] + (["÷ framework"] if has_framework else [])
    header += ["÷ peer"] + [f"{side_title(w)} ÷ peer" for w in workers] if has_peer else []
    header += ["p50 ms", "p99 ms", "CPU ms/req", "SQL/req"]
    rows = []
    notes = []
    for q in e.queries:
        server = q.sides.get("server")
        row = [q.key, f"`{q.title}`", _rate(q.rps("server"))]
        if has_nolog:
            row += [_rate(q.rps("nolog")), _x(q.ratio("server", "nolog"))]
        row += [_rate(q.rps(w)) for w in workers]
        row += [_rate(q.rps("floor")), _rate(q.rps("raw"))]
        if has_framework:
            row.append(_rate(q.rps("framework")))
        if has_write:
            row.append(_rate(q.rps("write")))
        if has_peer:
            row.append(_rate(q.rps("peer")))
        row.append(_x(q.ratio("server", "raw")))
        if has_framework:
            row.append(_x(q.ratio("server", "framework")))
        if has_peer:
            row += [_x(q.ratio("server", "peer"))] + [_x(q.ratio(w, "peer")) for w in workers]
        ok = server is not None and server.answered
        row += [
            _ms(server.p50_ms, ok) if server else "—",
            _ms(server.p99_ms, ok) if server else "—",
            f"{server.cpu_ms:.2f}" if server and ok else "—",
            e.statements.cell(q.key),
        ]
        rows.append(row)
        for side, cell in q.sides.items():
            note = _flags(side, cell) or (_writes_note(side, cell) if q.write else "")
            if note:
                notes.append(f"{q.key}: {note}")
    lines += _table(header, rows, 2)
    if notes:
        lines += ["", "Flags: " + "; ".join(notes) + "."]
    lines += [
        "",
        f"Req/s: medians of {run.rounds} rounds. ÷: the server's (1 worker) req/s over the "
        "other side's (÷ framework: over vanilla Strawberry's for the same document and answer "
        "size, no database; — where it does not answer the query). The write floor answers "
        "the writes only: vanilla Strawberry doing the raw floor's work (bare driver). "
        + (
            "No log: the same server with EVENT_LOG=false (the writes only: no change event "
            "recorded or appended); ÷ no log is the log's write cost (issue 10: ≥ 0.9). "
            if has_nolog
            else ""
        )
        + "p50/p99 and CPU: the "
        "server with 1 worker; CPU ms/req is the CPU time of the side's processes over the "
        "measured window ÷ requests answered. SQL/req: statements one request runs on the "
        "server (transaction control not counted).",
        "",
        "Per side (medians): p50 / p99 ms under load, and CPU ms per request:",
        "",
    ]
    header = (
        ["query"]
        + [f"{side_title(s)} p50 / p99" for s in sides]
        + [f"{side_title(s)} CPU" for s in sides]
    )
    rows = []
    for q in e.queries:
        row = [q.key]
        for s in sides:
            c = q.sides.get(s)
            row.append(
                f"{_ms(c.p50_ms)} / {_ms(c.p99_ms)}" if c is not None and c.answered else "—"
            )
        for s in sides:
            c = q.sides.get(s)
            row.append(f"{c.cpu_ms:.2f}" if c is not None and c.answered else "—")
        rows.append(row)
    lines += _table(header, rows)
    lines += [
        "",
        "Req/s of each round (noise shows here), and one request alone (ms, during the check):",
        "",
    ]
    header = (
        ["query"]
        + [side_title(s) for s in sides]
        + ["alone ms: " + " / ".join(side_title(s) for s in sides)]
    )
    rows = []
    for q in e.queries:
        row = [q.key]
        for s in sides:
            c = q.sides.get(s)
            row.append(" / ".join(_rate(r.rps) for r in c.results) if c else "—")
        row.append(" / ".join(f"{q.solo[s] * 1000:.1f}" if s in q.solo else "—" for s in sides))
        rows.append(row)
    lines += _table(header, rows)
    if e.latency:
        lines += [
            "",
            "One request at a time (one connection; at "
            f"{run.connections} connections p50 is mostly queueing, ≈ {run.connections} ÷ req/s):",
            "",
        ]
        shown = [s for s in ("server", "raw", "framework", "peer") if s in e.latency]
        keys = list(dict.fromkeys(k for s in shown for k in e.latency[s]))
        header = ["query"] + [f"{side_title(s)} p50 / p99 ms (req/s)" for s in shown]
        rows = []
        for k in keys:
            row = [k]
            for s in shown:
                r = e.latency[s].get(k)
                row.append(
                    f"{_ms(r.p50_ms, bool(r.requests))} / {_ms(r.p99_ms, bool(r.requests))} "
                    f"({_rate(r.rps)})"
                    if r
                    else "—"
                )
            rows.append(row)
        lines += _table(header, rows)
    lines += [
        "",
        f"Server memory (1 worker) after the run: {memory(e.rss.get('server after', {}))}; "
        f"before it: {memory(e.rss.get('server before', {}))}.",
    ]
    if e.flatness:
        points = "; ".join(f"after {n:,}: {memory(kib)}" for n, kib in e.flatness)
        lines += [
            "",
            f"A fresh server's memory by requests of Q1 served (bundled client): {points}.",
        ]
    page = e.statements.page_size_lines()
    if page:
        lines += ["", "Statements by page size: " + "; ".join(page) + "."]
    lines += [
        "",
        f"Q3 searches {e.search!r} ({e.search_matches:,} matching leads). Q4 starts half-way "
        "through the leads. Q5 cycles through 1,000 converted leads. Q7 creates leads with "
        "unique emails; Q8 converts a different lead on every request (each side and round its "
        "own pool).",
        "",
        f"### Issue 5's targets on {e.title} (informational)",
        "",
        "| target | this run | met |",
        "| --- | --- | :---: |",
    ]
    lines += [f"| {t} | {v} | {_mark(ok)} |" for t, v, ok in issue5_targets(e, run.connections)]
    return lines


def comparison(run: Run) -> list[str]:
    pg, lite = run.engine("postgresql"), run.engine("sqlite")
    if pg is None or lite is None:
        return []
    rows = []
    for q in lite.queries:
        other = pg.query(q.key)
        if other is None:
            continue
        row = [q.key]
        for side in ("server", "server2", "raw"):
            a, b = q.rps(side), other.rps(side)
            row += [_rate(b), _rate(a), _x(a / b if a is not None and b else None)]
        rows.append(row)
    header = ["query"]
    for side in ("server", "2 workers", "raw floor"):
        header += [f"{side} PostgreSQL", f"{side} SQLite", "SQLite ÷ PG"]
    return ["## SQLite against PostgreSQL", "", *_table(header, rows), ""]


def markdown(run: Run) -> str:
    m = run.machine
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` on {run.date}: {', '.join(e.title for e in run.engines)}; "
        f"{run.rounds} interleaved rounds, each driving every side for a query back to back, "
        f"{run.duration:g} s per query, side and round ({run.warmup:g} s of warm-up first in "
        "round 1), "
        f"{run.connections} connections, closed loop; medians of the rounds.",
        "",
        f"- Machine: {m['cpu']}, {m['nproc']} CPUs (nproc), {m['memory']} RAM, {m['os']}",
        f"- Python {m['python']}; load tool: {m['load tool']}",
        f"- Load average (1/5/15 min) before: {run.load_before}, after: {run.load_after}"
        " — other work on the machine skews the numbers",
        f"- Code: {m['commit']}",
        "- Sides: the server (`server.py serve`, LOG_LEVEL=warning) with 1 worker and with 2 "
        "(`WORKERS=2`); the app floor (`bench/floor.py`: the app's data layer, no GraphQL); the "
        "raw floor (`bench/raw.py`: the bare driver behind a plain ASGI callable, one JSON "
        "encode); the framework floor (`bench/framework.py`: vanilla Strawberry on Starlette and "
        "uvicorn answering the same documents from rows held in memory: no database, no app "
        "code); the write floor (`bench/write_floor.py`, createLead and convertLead only: "
        "vanilla Strawberry whose resolvers do the raw floor's work on the bare driver); "
        "for the same writes, the server with `EVENT_LOG=false` (`no log`: its writes append "
        "no change events); on "
        "PostgreSQL the PostGraphile peer (`bench/peer/`). Every side was checked to answer "
        "every query it has like the server (the floors: the same JSON; the framework floor: "
        "the same shape; the peer: the same rows).",
        "",
        "## Issue 9 targets",
        "",
        "| target | this run | met |",
        "| --- | --- | :---: |",
    ]
    lines += [f"| {t} | {v} | {_mark(ok)} |" for t, v, ok in issue9_targets(run)]
    lines.append("")
    log_cost = issue10_targets(run)
    if log_cost:
        lines += [
            "## Issue 10 targets: the change-event log's write cost",
            "",
            "The server against itself with EVENT_LOG=false (side `nolog`), 1 worker, in the "
            "same rounds: with the log ÷ without.",
            "",
            "| target | this run | met |",
            "| --- | --- | :---: |",
        ]
        lines += [f"| {t} | {v} | {_mark(ok)} |" for t, v, ok in log_cost]
        lines.append("")
    for e in run.engines:
        lines += [*engine_section(run, e), ""]
    lines += comparison(run)
    lines += [f"The whole run took {run.minutes:.1f} minutes.", ""]
    return "\n".join(lines)


def console(run: Run) -> str:
    lines = [f"{run.machine['nproc']} CPUs; {run.machine['load tool']}"]
    for e in run.engines:
        sides = e.sides()
        lines.append(f"{e.title}, N = {e.n:,} (req/s, medians of {run.rounds} rounds):")
        # Each column as wide as its title ("framework floor") and a gap.
        widths = [max(12, len(side_title(s)) + 2) for s in sides]
        lines.append(
            "  "
            + f"{'query':<10}"
            + "".join(f"{side_title(s):>{w}}" for s, w in zip(sides, widths, strict=True))
        )
        for q in e.queries:
            lines.append(
                "  "
                + f"{q.key:<10}"
                + "".join(f"{_rate(q.rps(s)):>{w}}" for s, w in zip(sides, widths, strict=True))
            )
    lines += [f"  {_mark(ok)} {t}: {v}" for t, v, ok in issue9_targets(run)]
    lines += [f"  {_mark(ok)} {t}: {v}" for t, v, ok in issue10_targets(run)]
    return "\n".join(lines)


def with_block(text: str, name: str, body: str) -> str:
    """``text`` with the marked block ``name`` (see ``with_blocks``) holding ``body``: replaced
    where it was, else appended."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        tail = rest.partition(end)[2].lstrip("\n")
        return head + block + ("\n" + tail if tail else "")
    return text.rstrip("\n") + "\n\n" + block
