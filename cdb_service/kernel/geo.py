"""Geographic code syntax per member state: postal codes, postal-code prefixes, LAU, NUTS.

Used by the registry (a criterion's geo keys), the gazetteer loader and the look-up
(a query's postal code): one canonical form everywhere, so keys compare as strings.
"""

from __future__ import annotations

import re

from cdb_service.kernel import codes

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
