"""``make test-postgres``: the whole suite on PostgreSQL, in a database of its own.

    python -m tests.run_postgres [pytest arguments]

Creates a uniquely named database on the server ``TEST_DATABASE_URL`` points at (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``; only its server and credentials are used),
runs pytest with ``TEST_DATABASE_URL`` set to the new database, and drops it afterwards whatever
happened. Exits with pytest's status, or 2 when PostgreSQL cannot be reached.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import asyncpg
from sqlalchemy.engine import make_url

from tests.databases import DEFAULT_POSTGRES_URL, create_database, drop_database, unique_name

ROOT = Path(__file__).resolve().parent.parent


# How long pytest gets to tear down (stop its server processes, drop its scratch databases)
# after the run is interrupted.
_TEARDOWN_SECONDS = 60


def _run_pytest(argv: list[str], env: dict[str, str]) -> int:
    """pytest's exit status. SIGTERM is passed on as SIGINT, which pytest answers by tearing its
    fixtures down; Ctrl-C reaches pytest from the terminal by itself."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *argv],
        cwd=ROOT,
        env=env,
        # A background job of a script starts with SIGINT ignored, which pytest would inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            process.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process.poll() is None:  # interrupted while waiting: give teardown its time
            try:
                process.wait(timeout=_TEARDOWN_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str]) -> int:
    base = os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL
    url = make_url(base)
    if url.get_backend_name() != "postgresql":
        sys.stderr.write(f"test-postgres: TEST_DATABASE_URL is not a PostgreSQL URL: {base}\n")
        return 2
    where = f"{url.host or '127.0.0.1'}:{url.port or 5432}"
    try:
        test_url = asyncio.run(create_database(base, unique_name("leadgraph_test")))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        sys.stderr.write(
            f"test-postgres: cannot create a test database on the PostgreSQL server at {where} "
            f"({type(exc).__name__}: {exc}).\n"
            "Start PostgreSQL, or point TEST_DATABASE_URL at one "
            "(postgresql+asyncpg://user[:password]@host:port/database).\n"
        )
        return 2
    name = make_url(test_url).database
    print(f"test-postgres: running the suite in the new database {name} at {where}", flush=True)
    try:
        return _run_pytest(argv, {**os.environ, "TEST_DATABASE_URL": test_url})
    finally:
        dropped = asyncio.run(drop_database(test_url, with_scratch=True))
        print(f"test-postgres: dropped {', '.join(dropped)}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
