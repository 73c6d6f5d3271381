"""Matching keys: what two spellings of one phone number, one state or one company have in
common. The values a user typed are stored as typed; these keys sit beside them (derived
columns) and filters, upserts and the duplicate finder compare keys."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
import pycountry

# Where a phone number written without a country code is taken to be (DEFAULT_PHONE_REGION);
# set once at start from the settings (db/engine.py).
_phone_region = "US"


def set_phone_region(region: str) -> None:
    global _phone_region
    _phone_region = region.upper()


@lru_cache(maxsize=4096)
def _e164(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Separators people write in a phone number ("+1 (512) 555-0100").
_SEPARATORS = re.compile(r"[ ().-]+")
_NANP_REGIONS = frozenset({"US", "CA"})


def _nanp(value: str, region: str) -> str | None:
    """A North American number in its plainest spellings, as phonenumbers formats it, without
    parsing (15 µs a number, a third of an imported row's validation); None for any other
    spelling, which phonenumbers reads. tests/test_keys.py checks the two agree."""
    plus = value.startswith("+")
    if not plus and region not in _NANP_REGIONS:
        return None
    digits = _SEPARATORS.sub("", value[1:] if plus else value)
    if not (digits.isascii() and digits.isdigit()):
        return None
    national = digits[1:] if plus else digits
    if plus and not digits.startswith("1"):
        return None
    if len(national) != 10 or national[0] in "01":
        return None
    return "+1" + national


def phone_key(value: str | None, region: str | None = None) -> str:
    """The number in E.164 ("+15125550100"), or '' when it is not a possible phone number."""
    if not value:
        return ""
    region = (region or _phone_region).upper()
    value = value.strip()
    return _nanp(value, region) or _e164(value, region)


def _regions() -> dict[str, str]:
    """Folded name or code → folded code, for the US states and territories and the
    Canadian provinces and territories (ISO 3166-2: "Texas", "TX" → "tx")."""
    out: dict[str, str] = {}
    for country in ("US", "CA"):
        for sub in pycountry.subdivisions.get(country_code=country) or ():
            code = sub.code.split("-", 1)[1].casefold()
            out[sub.name.casefold()] = code
            out[code] = code
    # Names people write that ISO spells otherwise.
    for alias, code in {"washington dc": "dc", "washington d.c.": "dc", "d.c.": "dc"}.items():
        out[alias] = code
    for alias, code in {"quebec": "qc", "québec": "qc", "yukon territory": "yt"}.items():
        out[alias] = code
    return out


REGIONS = _regions()


def region_key(value: str | None) -> str:
    """A state or province as its code when it is one of the US's or Canada's ("Texas",
    "tx", "TX" → "tx"), otherwise the folded text."""
    key = value.strip().casefold() if value else ""
    return REGIONS.get(key, key)


# The last words of a company's name that say what kind of company it is, not which one.
_LEGAL_SUFFIXES = frozenset(
    {"inc", "incorporated", "llc", "ltd", "limited", "corp", "corporation", "co", "company"}
    | {"gmbh", "ag", "sa", "sas", "sarl", "bv", "nv", "plc", "pty", "srl", "spa", "oy", "ab"}
)
_NOT_WORD = re.compile(r"[^\w]+")


def company_key(value: str | None) -> str:
    """A company's name folded, accents and punctuation dropped, legal suffixes ("Inc.",
    "GmbH") removed: "ACME, Inc." and "Acme" have one key."""
    if not value:
        return ""
    plain = unicodedata.normalize("NFKD", value.casefold())
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    words = [w for w in _NOT_WORD.split(plain) if w]
    while len(words) > 1 and words[-1] in _LEGAL_SUFFIXES:
        words.pop()
    return " ".join(words)
