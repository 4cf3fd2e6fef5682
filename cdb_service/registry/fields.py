"""Validated field types shared by every kind's schema.

Each validator raises ValueError with a sentence that a member-state administrator
can act on; pydantic attaches it to the field's location.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from cdb_service.registry import codes


def member_of(code_list: str, values: Mapping[str, str], hint: str = "") -> AfterValidator:
    def check(value: str) -> str:
        if value not in values:
            raise ValueError(
                f"{value!r} is not in the code list {code_list!r}{hint}"
                f" (GET /api/v1/code-lists/{code_list})"
            )
        return value

    return AfterValidator(check)


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


_GREECE_HINT = "; Greece is EL"

CountryCode = Annotated[
    str, BeforeValidator(_upper), member_of("countries", codes.COUNTRIES, _GREECE_HINT)
]
OwnerCode = Annotated[str, BeforeValidator(_upper), member_of("owners", codes.OWNERS, _GREECE_HINT)]
LanguageCode = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    member_of("languages", codes.LANGUAGES),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Ref = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^\S+$")
]
Priority = Annotated[int, Field(ge=0, le=10_000)]


def _https_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme.lower() != "https":
        raise ValueError("must be an https:// URL (access points are reached over TLS only)")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    if " " in value.strip():
        raise ValueError("must not contain spaces")
    return value.strip()


HttpsUrl = Annotated[
    str, StringConstraints(min_length=9, max_length=2000), AfterValidator(_https_url)
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+[0-9 ()./-]{6,30}$")


def check_contact_value(channel: str, value: str) -> str:
    if channel == "email" and not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    if channel in ("phone", "fax") and not _PHONE.match(value):
        raise ValueError(f"{value!r} is not an international number (+CC …)")
    if channel == "web":
        _https_url(value)
    return value


# --- geography ---------------------------------------------------------------------------

_PREFIXES = ("LT-", "LV-", "LU-", "L-", "CY-", "MT-")


def normalise_postal_code(country: str, value: str) -> str:
    """Canonical form: upper case, no spaces, no country prefix; PL/PT keep their hyphen."""
    shape = codes.POSTAL_CODE_SHAPES[country]
    code = re.sub(r"\s+", "", value.upper())
    for prefix in _PREFIXES:
        if code.startswith(prefix) and prefix.rstrip("-") in (country, country[0]):
            code = code[len(prefix) :]
    if "-" in shape and "-" not in code and len(code) == len(shape) - 1:
        cut = shape.index("-")
        code = f"{code[:cut]}-{code[cut:]}"
    if not codes.POSTAL_CODE_PATTERNS[country].fullmatch(code):
        raise ValueError(f"{value!r} is not a postal code of {country} (expected like {shape})")
    return code


def normalise_postal_prefix(country: str, value: str) -> str:
    shape = codes.POSTAL_CODE_SHAPES[country]
    code = re.sub(r"\s+", "", value.upper())
    classes = {"9": str.isdigit, "A": str.isalpha}
    ok = 0 < len(code) < len(shape) and all(
        classes[s](c) if s in classes else (c.isalnum() if s == "X" else c == s)
        for c, s in zip(code, shape, strict=False)
    )
    if not ok:
        raise ValueError(
            f"{value!r} is not a postal code prefix of {country} (a proper prefix of {shape})"
        )
    return code


_LAU = re.compile(r"^[0-9A-Z_]{1,20}$")


def normalise_geo_code(country: str, scheme: str, value: str) -> str:
    """Check `value` against the syntax of `scheme` in `country`; return its canonical form."""
    code = value.strip().upper()
    if scheme == "country":
        if code != country:
            raise ValueError(f"a country key must be {country}, the criterion's country")
        return code
    if scheme in ("nuts1", "nuts2", "nuts3"):
        level = int(scheme[-1])
        if not re.fullmatch(rf"{country}[0-9A-Z]{{{level}}}", code):
            raise ValueError(
                f"{value!r} is not a NUTS {level} code of {country}"
                f" ({country} followed by {level} letters or digits)"
            )
        return code
    if scheme == "lau":
        if not _LAU.match(code):
            raise ValueError(f"{value!r} is not a LAU code (1–20 letters, digits or _)")
        return code
    if scheme == "postal-code":
        return normalise_postal_code(country, value)
    if scheme == "postal-code-prefix":
        return normalise_postal_prefix(country, value)
    raise ValueError(f"unknown geo scheme {scheme!r}")


def nuts_ancestors(nuts3: str) -> list[tuple[str, str]]:
    """NUTS codes are hierarchical by prefix: DE300 lies in DE30, DE3 and DE."""
    return [("nuts3", nuts3), ("nuts2", nuts3[:4]), ("nuts1", nuts3[:3]), ("country", nuts3[:2])]


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
