"""Geographic code syntax per member state: postal codes, postal-code prefixes, LAU, NUTS.

Used by the registry (a criterion's geo keys), the gazetteer loader and the look-up
(a query's postal code): one canonical form everywhere, so keys compare as strings.
"""

from __future__ import annotations

import re

from cdb_service.kernel import codes

_PREFIXES = ("LT-", "LV-", "LU-", "L-", "CY-", "MT-")

# Where Eurostat's TERCET file keys a coarser unit than the full postcode, that unit
# is the gazetteer's postal code, and a sender's full postcode reaches it by its head:
# Ireland's Eircode routing key (A41 of A41 F2X3; D6W is one), Malta's locality code
# (ATD of ATD 1234).
POSTAL_UNITS = {
    "IE": (re.compile(r"[A-Z][0-9][0-9W]"), 3, "an Eircode routing key like A41"),
    "MT": (re.compile(r"[A-Z]{3}"), 3, "a locality code like ATD"),
}


def normalise_postal_code(country: str, value: str) -> str:
    """Canonical form: upper case, no spaces, no country prefix; PL/PT keep their hyphen.

    IE and MT also take the gazetteer's unit alone (`A41`, `ATD`), as TERCET lists them.
    """
    shape = codes.POSTAL_CODE_SHAPES[country]
    code = re.sub(r"\s+", "", value.upper())
    for prefix in _PREFIXES:
        if prefix.rstrip("-") not in (country, country[0]):
            continue
        if code.startswith(prefix):
            code = code[len(prefix) :]
        elif re.match(rf"{prefix[:-1]}[0-9]", code):  # "LV 3281" typed with a space
            code = code[len(prefix) - 1 :]
    if "-" in shape and "-" not in code and len(code) == len(shape) - 1:
        cut = shape.index("-")
        code = f"{code[:cut]}-{code[cut:]}"
    unit = POSTAL_UNITS.get(country)
    if unit is not None and unit[0].fullmatch(code):
        return code
    if not codes.POSTAL_CODE_PATTERNS[country].fullmatch(code):
        also = f", or {unit[2]}" if unit else ""
        raise ValueError(
            f"{value!r} is not a postal code of {country} (expected like {shape}{also})"
        )
    return code


def postal_unit(country: str, code: str) -> str:
    """The gazetteer's key for a canonical postal code: the code, or its unit (IE, MT)."""
    unit = POSTAL_UNITS.get(country)
    return code[: unit[1]] if unit is not None else code


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
