"""Secrets: opaque tokens (stored as hashes), one-time codes, and argon2id passwords."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_PREFIX = "lgs_"
API_KEY_PREFIX = "lgk_"
PASSWORD_MIN, PASSWORD_MAX = 10, 128
CODE_TTL_MINUTES = 10
CODE_MAX_ATTEMPTS = 5
CODE_COOLDOWN_SECONDS = 60

_hasher = PasswordHasher()  # argon2id with the library's current defaults


@cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both paths cost the same. Made on first
    use: hashing costs ~0.4 s, which every process start would pay otherwise."""
    return _hasher.hash("an unguessable placeholder password")


def new_token(prefix: str) -> str:
    """A random secret with a recognizable prefix (256 bits of entropy)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are high-entropy, so a plain SHA-256 is a sound lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def code_hash(code: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def code_matches(code: str, salt: str, expected_hash: str) -> bool:
    return hmac.compare_digest(code_hash(code, salt), expected_hash)


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, stored: str | None) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)
