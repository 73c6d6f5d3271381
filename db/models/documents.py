"""Trusted documents: GraphQL documents registered by their SHA-256, shared by every process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, String, Text
from sqlmodel import Field, SQLModel

from db.types import UTCDateTime


class TrustedDocument(SQLModel, table=True):
    """One registered document. ``hash`` is the hex SHA-256 of ``body`` (its documentId is
    ``sha256:<hash>``); ``alias`` is a client's own id for it when that is not the SHA-256 (the
    Relay compiler's MD5, say). ``trusted``: registered by an operator (a manifest) or by an
    ADMIN/OWNER, so it runs for everyone under TRUSTED_DOCUMENTS=require; a document another
    caller registered by APQ only saves bandwidth. ``schema_key`` names the schema (and
    validation limits) it last passed validation under."""

    __tablename__ = "trusted_documents"

    hash: str = Field(sa_column=Column(String(64), primary_key=True))
    alias: str | None = Field(default=None, sa_column=Column(String(200), unique=True))
    body: str = Field(sa_column=Column(Text, nullable=False))
    source: str = Field(sa_column=Column(String(20), nullable=False))
    trusted: bool = Field(sa_column=Column(Boolean, nullable=False))
    schema_key: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(timezone=True), nullable=False))
