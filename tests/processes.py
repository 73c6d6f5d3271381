"""Real server processes (``python server.py serve``), for what one in-process server cannot
show: several instances on one database, and a database that goes away and comes back."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from db import migrate
from db.engine import Database
from db.models import DEFAULT_WORKSPACE_ID
from db.repositories.auth import ApiKeyRepository
from db.settings import Settings
from db.types import utcnow
from resolvers.security import API_KEY_PREFIX, token_hash

ROOT = Path(__file__).resolve().parent.parent
# Settings the processes must not pick up from the environment of the test run.
_UNSET = ("SMTP_HOST", "FORWARDED_ALLOW_IPS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One Leadgraph instance on a free loopback port; its log goes to ``log_path``.
    ``command``: ``serve``, or ``worker`` (the background work alone, no port)."""

    def __init__(
        self, database_url: str, log_path: Path, command: str = "serve", **settings: str
    ) -> None:
        self.command = command
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if k.upper() not in _UNSET}
        self.env = {
            **env,
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": "warning",
            "GRAPHIQL": "false",
            # As the suite's own server (conftest.py): the tests' documents and request rates
            # predate cost limits; tests/test_rate_limits.py gives its keys small buckets.
            "MAX_QUERY_COST": "1000000",
            "RATE_LIMIT_MAXIMUM": "10000000",
            "RATE_LIMIT_RESTORE_RATE": "10000000",
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ServerProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "server.py", self.command],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def readyz(self) -> int:
        """/readyz's status code, or 0 when the process does not answer at all."""
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5).status_code
        except httpx.TransportError:
            return 0

    def wait_for_readyz(self, status: int, timeout: float = 30) -> float:
        """Polls /readyz until it answers ``status``; returns the seconds that took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited ({self.process.returncode}):\n{self.log()}"
                )
            if self.readyz() == status:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"/readyz did not answer {status} in {timeout} s:\n{self.log()}")

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        """Waits until the log holds ``text`` (the process must not exit meanwhile)."""
        started = time.monotonic()
        while text not in self.log():
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the process exited ({self.process.returncode}):\n{self.log()}"
                )
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{text!r} not logged in {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the process stops at once, in the middle of whatever it was doing."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()


def create_owner_key(database_url: str) -> str:
    """A new OWNER API key of the default workspace, written straight into the database
    (migrated first, if need be); returns the secret."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)

    async def create() -> None:
        settings = Settings(database_url=database_url, _env_file=None)  # type: ignore[call-arg]
        db = Database(database_url, settings)
        try:
            await migrate.upgrade(db)
            async with db.write() as session:
                await ApiKeyRepository(session, DEFAULT_WORKSPACE_ID).insert(
                    name="instances",
                    prefix=secret[:12],
                    token_hash=token_hash(secret),
                    role="OWNER",
                    created_at=utcnow(),
                )
        finally:
            await db.dispose()

    asyncio.run(create())
    return secret
