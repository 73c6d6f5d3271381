"""Bulk imports: a job per uploaded file, the file itself as chunks, and the rows it refused.

The body is kept in the database (``import_chunks``, ~1 MiB each) so that any process can run
or resume the job; the runner claims a job under a lease (``claimed_until``, ``claim_token``)
and moves ``rows_processed`` and the counters in the transaction that writes each batch's
leads, so a process killed between batches neither loses nor repeats a row.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
)
from sqlmodel import Field, SQLModel

from db.types import JSONType, UTCDateTime

IMPORT_MESSAGE_MAX = 500
IMPORT_FIELD_MAX = 100


class ImportStatus(enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


# Internal: the body is still arriving. Not a job yet as far as the API is concerned (none of
# its lists or lookups show it); one left behind by a process that died is deleted later.
UPLOADING = "UPLOADING"
FINISHED = (ImportStatus.SUCCEEDED.value, ImportStatus.FAILED.value, ImportStatus.CANCELLED.value)


class DuplicatePolicy(enum.Enum):
    SKIP = "SKIP"
    UPDATE = "UPDATE"
    CREATE = "CREATE"


class LeadMatch(enum.Enum):
    EMAIL = "EMAIL"
    EXTERNAL_ID = "EXTERNAL_ID"


class ImportFormat(enum.Enum):
    CSV = "CSV"
    NDJSON = "NDJSON"


def _dt(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _count() -> Any:
    return Field(default=0, sa_column=Column(Integer, nullable=False))


class ImportJob(SQLModel, table=True):
    __tablename__ = "import_jobs"
    __table_args__ = (
        # The workspace's jobs, newest first; the runner's queue (few rows are not finished).
        Index("ix_import_jobs_ws", "workspace_id", "id"),
        Index("ix_import_jobs_status", "status", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    workspace_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workspaces.id"), nullable=False)
    )
    status: str = Field(sa_column=Column(String(16), nullable=False))
    format: str = Field(sa_column=Column(String(16), nullable=False))
    # {"on_duplicate", "match_on", "dry_run"}: the query parameters, as given.
    options: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONType, nullable=False)
    )
    bytes_total: int = _count()
    chunks: int = _count()
    rows_total: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    rows_processed: int = _count()
    created: int = _count()
    updated: int = _count()
    skipped: int = _count()
    failed: int = _count()
    # Why a job FAILED as a whole (the file could not be read past some row).
    error: str | None = Field(default=None, sa_column=Column(String(IMPORT_MESSAGE_MAX)))
    created_at: datetime = _dt(nullable=False)
    finished_at: datetime | None = _dt()
    created_by_user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"))
    )
    created_by_api_key_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("api_keys.id"))
    )
    # The lease of the process running it; the token tells its claim from a later one.
    claimed_until: datetime | None = _dt()
    claim_token: str | None = Field(default=None, sa_column=Column(String(32)))


class ImportChunk(SQLModel, table=True):
    """A piece of the uploaded body, in order of ``seq``."""

    __tablename__ = "import_chunks"
    __table_args__ = (PrimaryKeyConstraint("job_id", "seq", name="pk_import_chunks"),)

    job_id: int = Field(
        sa_column=Column(Integer, ForeignKey("import_jobs.id", ondelete="CASCADE"), nullable=False)
    )
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ImportRowError(SQLModel, table=True):
    """One problem of one data row (1-based; the header is row 0)."""

    __tablename__ = "import_row_errors"
    __table_args__ = (Index("ix_import_row_errors_job", "job_id", "row", "id"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    job_id: int = Field(
        sa_column=Column(Integer, ForeignKey("import_jobs.id", ondelete="CASCADE"), nullable=False)
    )
    row: int = Field(sa_column=Column(Integer, nullable=False))
    field: str | None = Field(default=None, sa_column=Column(String(IMPORT_FIELD_MAX)))
    message: str = Field(sa_column=Column(String(IMPORT_MESSAGE_MAX), nullable=False))
    code: str = Field(sa_column=Column(String(32), nullable=False))
