"""Closed-loop HTTP load: wrk (Debian's package) when present, else a bundled asyncio client.

Both keep ``connections`` keep-alive connections busy (each sends its next request as soon as
the previous answer is in), for a duration or a number of requests, and count as an error any
answer that is not a 200 or that carries a GraphQL ``"errors"`` member, and any socket error or
timeout. A request body is ``prefix + value + suffix``, where the value is

- ``fixed``: empty, the same body every time;
- ``cycle``: the next of ``values``, round robin (reads of different rows);
- ``once``: the next of ``values``, each used once; the run ends early when they run out
  (convertLead on distinct leads);
- ``unique``: ``tag`` + a per-connection counter (createLead with unique emails).

The bundled client runs in its own process (``python -m bench.load``) so that it never shares a
core's event loop with anything else; it uses uvloop when installed, as uvicorn does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

Mode = Literal["fixed", "cycle", "once", "unique"]


@dataclass(frozen=True)
class LoadSpec:
    """What to send; see the module docstring for the modes."""

    path: str
    headers: dict[str, str]
    prefix: str
    suffix: str = ""
    mode: Mode = "fixed"
    values: tuple[str, ...] = ()
    tag: str = ""

    def body(self, value: str = "") -> str:
        return self.prefix + value + self.suffix


@dataclass
class LoadResult:
    tool: str
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    exhausted: bool = False  # a once-only pool ran out before the time did
    notes: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if path is None:
        return "wrk not found"
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].split(" [")[0].strip()


# ------------------------------------------------------------------ the bundled client


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class _Run:
    """Shared state of one run: what to send next, and what came back."""

    def __init__(
        self, spec: LoadSpec, host: str, duration: float | None, max_requests: int | None
    ) -> None:
        self.spec = spec
        self.head = "".join(
            [f"POST {spec.path} HTTP/1.1\r\nHost: {host}\r\n"]
            + [f"{k}: {v}\r\n" for k, v in spec.headers.items()]
            + ["Content-Type: application/json\r\n"]
        )
        self.fixed = self._request("") if spec.mode == "fixed" else b""
        self.cycled = [self._request(v) for v in spec.values] if spec.mode == "cycle" else []
        self.start = time.perf_counter()
        self.deadline = self.start + duration if duration is not None else float("inf")
        self.max_requests = max_requests
        self.sent = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.exhausted = False
        self.last = self.start
        self.counters: dict[int, int] = {}

    def _request(self, value: str) -> bytes:
        body = self.spec.body(value).encode()
        return (self.head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def next_request(self, worker: int) -> bytes | None:
        if self.max_requests is not None and self.sent >= self.max_requests:
            return None
        mode = self.spec.mode
        if mode == "fixed":
            request = self.fixed
        elif mode == "cycle":
            request = self.cycled[self.sent % len(self.cycled)]
        elif mode == "once":
            if self.sent >= len(self.spec.values):
                self.exhausted = True
                return None
            request = self._request(self.spec.values[self.sent])
        else:
            n = self.counters.get(worker, 0) + 1
            self.counters[worker] = n
            request = self._request(f"{self.spec.tag}{worker}-{n}")
        self.sent += 1
        return request

    def record(self, started: float, ended: float, ok: bool) -> None:
        if ended > self.deadline:
            return
        self.latencies.append(ended - started)
        self.last = ended
        if not ok:
            self.errors += 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending requests back to back."""

    def __init__(self, run: _Run, worker: int, done: asyncio.Future[None]) -> None:
        self.run = run
        self.worker = worker
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.expected: int | None = None
        self.status = 0
        self.started = 0.0
        self.body_start = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(None)

    def _send(self) -> None:
        request = None
        if time.perf_counter() < self.run.deadline:
            request = self.run.next_request(self.worker)
        if request is None:
            self._finish()
            return
        self.buffer.clear()
        self.expected = None
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.expected is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            length = next(
                (int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:")),
                None,
            )
            if length is None:  # our servers always send Content-Length for these answers
                self.run.errors += 1
                self._finish()
                return
            self.expected = end + 4 + length
            self.body_start = end + 4
        if len(self.buffer) < self.expected:
            return
        ended = time.perf_counter()
        body = self.buffer[self.body_start : self.expected]
        self.run.record(self.started, ended, self.status == 200 and b'"errors"' not in body)
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if self.expected is not None or self.buffer:
                self.run.errors += 1
            self.done.set_result(None)


async def run_python(
    url: str,
    spec: LoadSpec,
    connections: int,
    duration: float | None,
    max_requests: int | None = None,
) -> LoadResult:
    """The bundled client, in this process; prefer ``run`` (a separate process)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    run = _Run(spec, f"{host}:{port}", duration, max_requests)
    loop = asyncio.get_running_loop()
    dones: list[asyncio.Future[None]] = []
    for worker in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        dones.append(done)
        await loop.create_connection(partial(_Connection, run, worker, done), host, port)
    limit = (duration or 0) + 120 if max_requests is None else None
    try:
        await asyncio.wait_for(asyncio.gather(*dones), timeout=limit)
    except TimeoutError:
        run.errors += sum(1 for d in dones if not d.done())
    latencies = sorted(run.latencies)
    ended_early = run.exhausted or max_requests is not None
    elapsed = (run.last if ended_early else min(run.deadline, time.perf_counter())) - run.start
    return LoadResult(
        tool="python",
        requests=len(latencies),
        duration_s=elapsed,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=run.errors,
        exhausted=run.exhausted,
    )


# ------------------------------------------------------------------ wrk


def _lua_string(value: str) -> str:
    if "]==]" in value:
        raise ValueError("value not representable as a Lua long string")
    return f"[==[{value}]==]"


def wrk_script(spec: LoadSpec, threads: int) -> str:
    """A wrk Lua script sending ``spec``'s bodies and printing one BENCH_RESULT line."""
    headers = ", ".join(
        f"[ {_lua_string(k)} ] = {_lua_string(v)}"
        for k, v in {**spec.headers, "Content-Type": "application/json"}.items()
    )
    values = ",\n".join(_lua_string(v) for v in spec.values)
    return f"""-- generated by bench/load.py
local path = {_lua_string(spec.path)}
local prefix = {_lua_string(spec.prefix)}
local suffix = {_lua_string(spec.suffix)}
local mode = "{spec.mode}"
local tag = {_lua_string(spec.tag)}
local nthreads = {threads}
local headers = {{ {headers} }}
local values = {{
{values}
}}

local started = 0
local threads = {{}}

function setup(thread)
  started = started + 1
  thread:set("tid", started)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  errors = 0
  exhausted = 0
  fixed = wrk.format("POST", path, headers, prefix .. suffix)
  idle = wrk.format("GET", "/healthz")
end

function request()
  if mode == "fixed" then return fixed end
  n = n + 1
  local value
  if mode == "unique" then
    value = tag .. tid .. "-" .. n
  elseif mode == "cycle" then
    value = values[((n - 1) * nthreads + tid - 1) % #values + 1]
  else
    local k = (n - 1) * nthreads + tid
    if k > #values then
      -- The pool ran out: stop, and send nothing that writes meanwhile.
      exhausted = 1
      wrk.thread:stop()
      return idle
    end
    value = values[k]
  end
  return wrk.format("POST", path, headers, prefix .. value .. suffix)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local errs, exh = 0, 0
  for _, t in ipairs(threads) do
    errs = errs + (t:get("errors") or 0)
    exh = math.max(exh, t:get("exhausted") or 0)
  end
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %.0f %.0f %.0f %.0f %.0f %.0f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errs + e.connect + e.read + e.write + e.timeout, exh))
end
"""


def run_wrk(
    url: str, spec: LoadSpec, connections: int, duration: float, workdir: Path
) -> LoadResult:
    path = wrk_path()
    assert path is not None
    threads = max(1, min(2, connections))
    script = workdir / "wrk-script.lua"
    script.write_text(wrk_script(spec, threads))
    seconds = max(1, round(duration))
    command = [path, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    out = subprocess.run(
        [*command, "-s", str(script), url.rstrip("/") + spec.path],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 90,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    requests, duration_us, p50, p99, errors, exhausted = (int(x) for x in line.split()[1:])
    return LoadResult(
        tool="wrk",
        requests=requests,
        duration_s=duration_us / 1e6,
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        errors=errors,
        exhausted=bool(exhausted),
    )


# ------------------------------------------------------------------ either, from the harness


def run(
    tool: str,
    url: str,
    spec: LoadSpec,
    connections: int,
    duration: float | None,
    workdir: Path,
    max_requests: int | None = None,
) -> LoadResult:
    """One run with ``tool`` ("wrk" or "python"); counted runs always use the bundled client."""
    if tool == "wrk" and max_requests is None:
        assert duration is not None
        return run_wrk(url, spec, connections, duration, workdir)
    spec_file = workdir / "load-spec.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    command = [sys.executable, "-m", "bench.load", url, str(spec_file), str(connections)]
    if duration is not None:
        command += ["--duration", str(duration)]
    if max_requests is not None:
        command += ["--max-requests", str(max_requests)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the load client failed: {out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return LoadResult(**result)


def main() -> None:
    parser = argparse.ArgumentParser(description="bench's bundled closed-loop HTTP client")
    parser.add_argument("url")
    parser.add_argument("spec", type=Path)
    parser.add_argument("connections", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--max-requests", type=int)
    args = parser.parse_args()
    raw = json.loads(args.spec.read_text())
    spec = LoadSpec(**{**raw, "values": tuple(raw["values"])})
    runner: Callable[[Coroutine[Any, Any, LoadResult]], LoadResult] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop comes with uvicorn[standard]; plain asyncio otherwise
        pass
    result = runner(run_python(args.url, spec, args.connections, args.duration, args.max_requests))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
