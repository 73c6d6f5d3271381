"""An import survives its process: a real ``server.py serve`` killed with SIGKILL in the middle
of a 50,000-row import, and a new process on the same database, end with every row imported
exactly once (the batch under way when the process died is rolled back and done again)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import GraphQLClient
from tests.databases import query, scratch_database
from tests.processes import ServerProcess, create_owner_key

ROWS = 50_000
# Small batches and a short lease: the kill lands between many batches, and the next process
# takes the job over two seconds after the last renewal.
SETTINGS = {
    "IMPORT_BATCH_ROWS": "500",
    "IMPORT_LEASE_SECONDS": "2",
    "IMPORT_POLL_INTERVAL_SECONDS": "0.1",
    "WEBHOOK_SENDER": "false",
    "LOG_LEVEL": "info",
}
JOB = """
query ($id: ID!) {
  importJob(id: $id) { status rowsTotal rowsProcessed created updated skipped failed }
}
"""


def children(server: ServerProcess) -> list[int]:
    """The processes the server started (its import worker), by their parent in /proc."""
    assert server.process is not None
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid:
            found.append(int(stat.parent.name))
    return found


def progress(gql: GraphQLClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = gql.data(JOB, {"id": job_id})["importJob"]
    return job


def test_an_import_killed_mid_way_resumes_without_losing_or_repeating_a_row(
    tmp_path: Path,
) -> None:
    body = "email,firstName\n" + "".join(f"lead{n}@example.com,N{n}\n" for n in range(ROWS))
    with scratch_database(tmp_path) as url:
        key = create_owner_key(url)
        first = ServerProcess(url, tmp_path / "first.log", **SETTINGS).start()
        second = ServerProcess(url, tmp_path / "second.log", **SETTINGS)
        try:
            first.wait_for_readyz(200, timeout=60)
            with httpx.Client(base_url=first.url, timeout=30) as http:
                posted = http.post(
                    "/imports/leads",
                    content=body.encode(),
                    headers={"Content-Type": "text/csv", "Authorization": f"Bearer {key}"},
                )
                assert posted.status_code == 202, posted.text
                job_id = posted.json()["id"]
                gql = GraphQLClient(http, key)
                deadline = time.monotonic() + 60
                while progress(gql, job_id)["rowsProcessed"] < ROWS // 5:
                    assert time.monotonic() < deadline, first.log()
                    time.sleep(0.02)

                workers = children(first)
                first.kill()

            # Its validating worker process goes with it.
            deadline = time.monotonic() + 10
            while workers and any(Path(f"/proc/{pid}").exists() for pid in workers):
                assert time.monotonic() < deadline, f"worker processes {workers} outlived it"
                time.sleep(0.1)
            # What the dead process committed: its progress and its leads, in step.
            [(done, status)] = query(url, "SELECT rows_processed, status FROM import_jobs")
            [(leads,)] = query(url, "SELECT count(*) FROM leads")
            assert status == "RUNNING"
            assert 0 < done < ROWS
            assert leads == done

            second.start()
            second.wait_for_readyz(200, timeout=60)
            with httpx.Client(base_url=second.url, timeout=30) as http:
                gql = GraphQLClient(http, key)
                deadline = time.monotonic() + 120
                while (job := progress(gql, job_id))["status"] in ("QUEUED", "RUNNING"):
                    assert time.monotonic() < deadline, second.log()
                    time.sleep(0.1)
            second.wait_for_log(f"running from row {done}")
        finally:
            first.stop()
            second.stop()

        assert job == {
            "status": "SUCCEEDED",
            "rowsTotal": ROWS,
            "rowsProcessed": ROWS,
            "created": ROWS,
            "updated": 0,
            "skipped": 0,
            "failed": 0,
        }
        [(count, distinct)] = query(url, "SELECT count(*), count(DISTINCT email) FROM leads")
        assert (count, distinct) == (ROWS, ROWS)
        emails = {row[0] for row in query(url, "SELECT email FROM leads")}
        assert emails == {f"lead{n}@example.com" for n in range(ROWS)}
