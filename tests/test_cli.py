"""The command line: migrate, export-schema, and clean configuration errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.databases import query, scratch_database, table_names

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "server.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_creates_the_database(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as url:
        result = run("migrate", DATABASE_URL=url)
        assert result.returncode == 0, result.stderr
        tables = table_names(url)
    assert {"alembic_version", "workspaces", "leads", "clients"} <= tables


def test_export_schema_prints_the_committed_sdl() -> None:
    result = run("export-schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "schema" / "schema.graphql").read_text()


def test_bad_configuration_is_reported_without_a_traceback() -> None:
    result = run("migrate", PORT="eighty", LOG_LEVEL="loud")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Configuration error: PORT: Input should be a valid integer, unable to parse string "
        "as an integer",
        "Configuration error: LOG_LEVEL: Input should be 'critical', 'error', 'warning', "
        "'info' or 'debug'",
    ]


def test_a_webhook_lease_within_the_timeout_is_a_configuration_error() -> None:
    result = run("worker", WEBHOOK_TIMEOUT_SECONDS="10", WEBHOOK_LEASE_SECONDS="10")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Configuration error: WEBHOOK_LEASE_SECONDS must be longer than "
        "WEBHOOK_TIMEOUT_SECONDS: a delivery still being sent would be claimed and sent again "
        "by another process"
    ]


def test_create_api_key_makes_the_workspace_and_prints_a_working_key(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as url:
        first = run("create-api-key", "--workspace", "Acme", "--role", "OWNER", DATABASE_URL=url)
        second = run("create-api-key", "--workspace", "Acme", "--role", "VIEWER", DATABASE_URL=url)
        workspaces = query(url, "SELECT name FROM workspaces ORDER BY id")
        keys = query(url, "SELECT role, workspace_id FROM api_keys ORDER BY id")

    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("lgk_")
    assert "OWNER API key for the created workspace 'Acme'" in first.stderr
    assert "VIEWER API key for the existing workspace 'Acme'" in second.stderr
    assert workspaces == [("Default",), ("Acme",)]
    assert keys == [("OWNER", 2), ("VIEWER", 2)]
