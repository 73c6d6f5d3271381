"""WORKERS=2: one ``server.py serve`` whose two worker processes share the port, on a fresh
database of the suite's engine. What must hold across them is shown over real connections:
the parent migrates once, both workers answer, rate limits are counted once for both, and a
revoked credential or a changed role applies on the next request whichever worker takes it.

Which worker answered a request is read from the server's own log: every line carries the pid
of the process that wrote it and the request's id (the X-Request-ID each request sends), and
uvicorn's access log writes its line before the response goes out."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory

from db import migrate
from tests.conftest import Mailbox
from tests.databases import query, scratch_database
from tests.processes import ServerProcess, create_owner_key, free_port
from tests.test_auth_flows import PASSWORD, SIGN_IN, SIGN_OUT, SIGN_UP, VERIFY
from tests.test_members import ACCEPT, INVITE, MEMBERS, UPDATE_ROLE

ROOT = Path(__file__).resolve().parent.parent
RATE_LIMIT = 4  # AUTH_RATE_LIMIT_PER_MINUTE of the server under test
CREATE_LEAD = """
mutation ($email: String!) {
  createLead(input: {email: $email}) { lead { id } userErrors { code } }
}
"""
CREATE_KEY = """
mutation ($name: String!) {
  createApiKey(input: {name: $name, role: ADMIN}) { apiKey { id } secret userErrors { code } }
}
"""
REVOKE_KEY = "mutation ($id: ID!) { revokeApiKey(id: $id) { apiKey { id } userErrors { code } } }"
LEADS = "{ leads(first: 1) { totalCount } }"
ME = "{ me { role } }"


@dataclass
class Answer:
    """One response, and the pid of the worker that answered it."""

    pid: int
    status: int
    body: dict[str, Any]


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of each live child of ``pid``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it exited meanwhile
            continue
        # The fields after the command name, which may itself hold spaces and parentheses.
        letter, parent = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(parent) == pid and letter != "Z":
            found.append((int(entry), cmdline))
    return found


class Workers:
    """A ``server.py serve`` with WORKERS=2 and helpers to see which worker answers."""

    def __init__(self, database_url: str, log_path: Path, **settings: str) -> None:
        self.server = ServerProcess(
            database_url, log_path, WORKERS="2", LOG_LEVEL="info", **settings
        )
        self.database_url = database_url

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def parent(self) -> subprocess.Popen[bytes]:
        assert self.server.process is not None
        return self.server.process

    def start(self) -> Workers:
        self.server.start()
        self.server.wait_for_readyz(200, timeout=60)
        # /readyz answers once one worker is up; wait for the second one's startup too.
        wait_until(lambda: self.log().count("Application startup complete.") >= 2, self.log)
        return self

    def log(self) -> str:
        return self.server.log()

    def worker_pids(self) -> set[int]:
        """The parent's children that are uvicorn workers (multiprocessing spawns them; the
        spawn start method also starts its resource tracker, which is not one)."""
        return {pid for pid, cmd in children(self.parent.pid) if "spawn_main" in cmd}

    def answered_by(self, request_id: str) -> int:
        """The pid of the process whose access log line carries ``request_id``."""
        lines = re.findall(
            rf"^\S+ \S+ INFO (\d+) \[{re.escape(request_id)}\] uvicorn\.access: ",
            self.log(),
            re.M,
        )
        assert len(lines) == 1, (request_id, lines)
        return int(lines[0])

    def post(
        self,
        document: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        local_address: str = "127.0.0.1",
    ) -> Answer:
        """One request over a new connection (so any worker may take it)."""
        request_id = f"w-{uuid.uuid4().hex}"
        headers = {"X-Request-ID": request_id}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        transport = httpx.HTTPTransport(local_address=local_address)
        with httpx.Client(base_url=self.url, transport=transport, timeout=60) as http:
            response = http.post(
                "/graphql", json={"query": document, "variables": variables or {}}, headers=headers
            )
        return Answer(self.answered_by(request_id), response.status_code, response.json())

    def data(self, document: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        answer = self.post(document, variables, **kw)
        assert answer.status == 200 and "errors" not in answer.body, answer.body
        return answer.body["data"]

    def spread(self, send: Callable[[], Answer], each: int = 3, most: int = 160) -> list[Answer]:
        """Calls ``send`` four at a time (each call opens its own connection) until every
        worker has answered ``each`` calls at least; all the answers, in no particular order."""
        workers = self.worker_pids()
        assert len(workers) == 2, workers
        answers: list[Answer] = []
        with ThreadPoolExecutor(max_workers=4) as pool:
            while len(answers) < most:
                answers += pool.map(lambda _: send(), range(4))
                per_worker = Counter(a.pid for a in answers)
                assert set(per_worker) <= workers, (per_worker, workers)
                if all(per_worker[pid] >= each for pid in workers):
                    return answers
        raise AssertionError(f"{most} requests did not reach both workers: {per_worker}")

    def stop(self) -> None:
        self.server.stop()


def wait_until(condition: Callable[[], bool], explain: Callable[[], str], most: int = 600) -> None:
    """Polls ``condition`` every 0.1 s, ``most`` times at most."""
    for _ in range(most):
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"the condition did not hold:\n{explain()}")


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory, smtp: Mailbox) -> Iterator[Workers]:
    directory = tmp_path_factory.mktemp("workers")
    with scratch_database(directory) as url:
        server = Workers(
            url,
            directory / "workers.log",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp.port),
            SMTP_STARTTLS="false",
            AUTH_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT),
            AUTH_RATE_LIMIT_PER_ADDRESS_PER_MINUTE="1000",
        )
        try:
            yield server.start()
        finally:
            server.stop()


@pytest.fixture(scope="module")
def owner_key(workers: Workers) -> str:
    return create_owner_key(workers.database_url)


@pytest.fixture(autouse=True)
def no_errors_logged(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test did, the server logged no error (a masked one included)."""
    if "workers" not in request.fixturenames:
        yield
        return
    server: Workers = request.getfixturevalue("workers")
    start = len(server.log())
    yield
    added = server.log()[start:]
    assert "ERROR" not in added and "Traceback" not in added, added


def codes(answer: Answer, field: str) -> list[str]:
    return [e["code"] for e in answer.body["data"][field]["userErrors"]]


def test_two_worker_processes_serve_the_port(workers: Workers) -> None:
    pids = workers.worker_pids()
    started = re.findall(r"INFO (\d+) \[-\] uvicorn\.error: Started server process", workers.log())

    assert len(pids) == 2
    assert {int(p) for p in started} == pids
    assert workers.parent.pid not in pids
    # Both take requests from the one port, and each carries the request id into its log.
    answers = workers.spread(lambda: workers.post(ME))
    assert {a.status for a in answers} == {401}


def test_the_parent_migrated_the_fresh_database_once_before_the_workers_started(
    workers: Workers,
) -> None:
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    log = workers.log()
    # Alembic says which implementation it runs with each time it is run: once, in the parent.
    runs = re.findall(r"INFO (\d+) \[-\] alembic\.runtime\.migration: Context impl", log)
    first = re.findall(r"INFO (\d+) \[-\] alembic\.runtime\.migration: Running upgrade  -> ", log)

    assert query(workers.database_url, "SELECT version_num FROM alembic_version") == [(head,)]
    assert runs == first == [str(workers.parent.pid)]
    assert log.index("Running upgrade") < log.index("Started server process")


def test_a_rate_limit_is_counted_once_across_the_workers(workers: Workers) -> None:
    """Wrong passwords for one account from one address, until each worker has answered more
    of them than the limit: a limit kept per process would let each worker pass its own."""
    email = f"target-{uuid.uuid4().hex[:8]}@example.com"
    values = {"input": {"email": email, "password": "not the password"}}

    answers = workers.spread(
        lambda: workers.post(SIGN_IN, values, local_address="127.0.0.5"), each=RATE_LIMIT + 1
    )

    outcomes = Counter(code for a in answers for code in codes(a, "signIn"))
    assert outcomes == {
        "INVALID_CREDENTIALS": RATE_LIMIT,
        "RATE_LIMITED": len(answers) - RATE_LIMIT,
    }


def test_a_revoked_api_key_is_refused_by_every_worker_on_the_next_request(
    workers: Workers, owner_key: str
) -> None:
    created = workers.data(CREATE_KEY, {"name": "soon revoked"}, token=owner_key)["createApiKey"]
    key = created["secret"]
    before = workers.spread(lambda: workers.post(LEADS, token=key))
    assert {a.status for a in before} == {200}

    revoked = workers.data(REVOKE_KEY, {"id": created["apiKey"]["id"]}, token=owner_key)
    after = workers.spread(lambda: workers.post(LEADS, token=key))

    assert revoked["revokeApiKey"]["userErrors"] == []
    assert {a.status for a in after} == {401}
    assert {e["extensions"]["code"] for a in after for e in a.body["errors"]} == {"UNAUTHENTICATED"}


def test_a_signed_out_session_is_refused_by_every_worker_on_the_next_request(
    workers: Workers, smtp: Mailbox
) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    signed_up = workers.data(
        SIGN_UP,
        {"input": {"email": email, "password": PASSWORD, "name": "Ada", "workspaceName": "W"}},
    )
    assert signed_up["signUp"]["userErrors"] == []
    verified = workers.data(VERIFY, {"input": {"email": email, "code": smtp.code_for(email)}})
    token = verified["verifyEmail"]["token"]
    assert {a.status for a in workers.spread(lambda: workers.post(ME, token=token))} == {200}

    signed_out = workers.data(SIGN_OUT, token=token)["signOut"]
    after = workers.spread(lambda: workers.post(ME, token=token))

    assert signed_out["userErrors"] == []
    assert {a.status for a in after} == {401}


def test_a_role_change_applies_in_every_worker_on_the_next_request(
    workers: Workers, owner_key: str, smtp: Mailbox
) -> None:
    # Given a MEMBER, signed in, whom every worker has served
    email = f"mel-{uuid.uuid4().hex[:8]}@example.com"
    invited = workers.data(INVITE, {"input": {"email": email, "role": "MEMBER"}}, token=owner_key)
    assert invited["inviteMember"]["userErrors"] == []
    values = {"email": email, "code": smtp.code_for(email), "name": "Mel", "password": PASSWORD}
    token = workers.data(ACCEPT, {"input": values})["acceptInvitation"]["token"]
    member = next(
        m["user"]["id"]
        for m in workers.data(MEMBERS, token=owner_key)["members"]
        if m["user"]["email"] == email
    )

    def create() -> Answer:
        return workers.post(CREATE_LEAD, {"email": f"{uuid.uuid4().hex}@example.com"}, token=token)

    assert {codes(a, "createLead") == [] for a in workers.spread(create)} == {True}

    # When an OWNER makes them a VIEWER, no worker lets them write any more
    demoted = workers.data(UPDATE_ROLE, {"userId": member, "role": "VIEWER"}, token=owner_key)
    assert demoted["updateMemberRole"]["userErrors"] == []
    refused = workers.spread(create)
    assert {
        (e["extensions"]["code"], a.body["data"]) for a in refused for e in a.body["errors"]
    } == {("FORBIDDEN", None)}
    assert {
        a.body["data"]["me"]["role"] for a in workers.spread(lambda: workers.post(ME, token=token))
    } == {"VIEWER"}

    # and when made a MEMBER again, every worker lets them write at once.
    promoted = workers.data(UPDATE_ROLE, {"userId": member, "role": "MEMBER"}, token=owner_key)
    assert promoted["updateMemberRole"]["userErrors"] == []
    assert {codes(a, "createLead") == [] for a in workers.spread(create)} == {True}


def raw_exchange(url: str, first: bytes, second: bytes) -> tuple[bytes, bytes]:
    """Two requests on one connection (so one worker answers both): the two responses."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(first)
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(65536)
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        while len(head.split(b"\r\n\r\n", 1)[1]) < length:
            head += conn.recv(65536)
        conn.sendall(second)
        rest = b""
        while chunk := conn.recv(65536):
            rest += chunk
    return head, rest


def test_every_worker_bounds_a_request_line_and_headers(workers: Workers) -> None:
    """server.BoundedHttpToolsProtocol is each worker's protocol: past MAX_BODY_BYTES (1 MiB by
    default) of headers, a 400; uvicorn's own httptools protocol would take them."""
    long_header = b"X-Filler: " + b"a" * (1024 * 1024 + 10) + b"\r\n"

    def send() -> Answer:
        request_id = f"w-{uuid.uuid4().hex}"
        first = f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: {request_id}\r\n\r\n"
        second = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + long_header + b"\r\n"
        _, refused = raw_exchange(workers.url, first.encode(), second)
        status = int(refused.split(b" ", 2)[1]) if refused else 0
        return Answer(workers.answered_by(request_id), status, {})

    assert {a.status for a in workers.spread(send)} == {400}


def test_a_killed_worker_is_replaced(workers: Workers) -> None:
    before = workers.worker_pids()
    killed = min(before)

    os.kill(killed, signal.SIGKILL)

    wait_until(
        lambda: len(workers.worker_pids() - before) == 1 and len(workers.worker_pids()) == 2,
        workers.log,
    )
    [replacement] = workers.worker_pids() - before
    wait_until(
        lambda: (
            f"INFO {replacement} [-] uvicorn.error: Application startup complete." in workers.log()
        ),
        workers.log,
    )
    answers = workers.spread(lambda: workers.post(ME))
    assert replacement in {a.pid for a in answers}
    assert f"Child process [{killed}] died" in workers.log()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_parent_stops_every_process(
    tmp_path: Path, workers: Workers, signum: signal.Signals
) -> None:
    # A second server on the same (migrated) database, to stop.
    server = Workers(workers.database_url, tmp_path / "stopped.log")
    try:
        server.start()
        pids = server.worker_pids()
        everyone = {pid for pid, _ in children(server.parent.pid)}  # the resource tracker too
        assert len(pids) == 2

        server.parent.send_signal(signum)

        assert server.parent.wait(timeout=60) == 0
        # The workers were joined by the parent; its resource tracker follows it out.
        assert not pids & {pid for pid in everyone if Path(f"/proc/{pid}").exists()}
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in everyone), server.log)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=5)
        log = server.log()
        for pid in pids:
            assert f"INFO {pid} [-] uvicorn.error: Finished server process [{pid}]" in log
        assert "Traceback" not in log and "ERROR" not in log, log
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "Input should be greater than or equal to 1"),
        ("-2", "Input should be greater than or equal to 1"),
        ("abc", "Input should be a valid integer, unable to parse string as an integer"),
        ("1.5", "Input should be a valid integer, unable to parse string as an integer"),
    ],
)
def test_a_bad_workers_setting_stops_serve_with_a_clear_error(value: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "server.py", "serve"],
        cwd=ROOT,
        env={**os.environ, "WORKERS": value},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"Configuration error: WORKERS: {message}"]
    assert result.stdout == ""


def test_when_the_parent_cannot_migrate_no_worker_starts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'no such directory' / 'leadgraph.db'}"
    result = subprocess.run(
        [sys.executable, "server.py", "serve"],
        cwd=ROOT,
        env={**os.environ, "WORKERS": "2", "DATABASE_URL": url, "PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 3  # uvicorn's status for a server that failed to start
    assert "ERROR" in result.stderr
    assert "Migrating the database failed; no worker was started." in result.stderr
    assert "unable to open database file" in result.stderr
    assert "Started server process" not in result.stderr


def test_workers_stop_by_themselves_when_the_parent_is_killed(
    tmp_path: Path, workers: Workers
) -> None:
    server = Workers(workers.database_url, tmp_path / "orphaned.log")
    pids: set[int] = set()
    try:
        server.start()
        pids = server.worker_pids()
        server.parent.kill()  # SIGKILL: the parent cannot stop them

        def stopped() -> bool:
            return all(state(pid) in (None, "Z") for pid in pids)

        wait_until(stopped, server.log)
        log = server.log()
        for pid in pids:
            assert f"INFO {pid} [-] uvicorn.error: Finished server process [{pid}]" in log
    finally:
        server.stop()
        for pid in pids:  # had they outlived their parent
            if state(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)


def state(pid: int) -> str | None:
    """The state letter of process ``pid`` (Z: exited, not yet reaped), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]
