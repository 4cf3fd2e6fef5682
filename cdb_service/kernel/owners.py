"""Who owns entries and which instruments each takes part in.

By default: the member states and Eurojust (`codes.OWNERS`), each in every instrument
but those the law leaves it out of (`NOT_PARTICIPATING`, each fact with its source).
An operator keeps the list in the registry (kind `owners`, Commission-owned, with
history, audit and feed like every entry): an `owners` entry for a member state or
EJ replaces its default line; one for any other code registers a third country's
central authority (e.g. a contracting state of the HCCH 2007 Maintenance Convention)
with the instruments it takes part in. `Owners` is that merged list, built from the
registry's current `owners` entries wherever validation, a look-up or a code list
needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from cdb_service.kernel import codes

# Instruments an owner does not take part in by default, and why.
NOT_PARTICIPATING: Final = MappingProxyType(
    {
        # The EIO (Directive 2014/41/EU) binds neither Ireland (Protocol No 21) nor
        # Denmark (Protocol No 22): the Directive's own closing recitals, as issue 31
        # states; that text is not among ../shared/reference/.
        #
        # Ireland is otherwise bound by Regulation (EU) 2018/1727 (Eurojust: art. 21,
        # art. 21a) since Commission Decision (EU) 2019/2006: Implementing Regulation
        # (EU) 2025/2447, recital 12 (../shared/reference/implementing-regulation-
        # 2025-2447-fr.txt). The same recital says Ireland is bound neither by
        # Regulation (EU) 2023/2131 nor by 2025/2447 itself (the digital channel): an
        # operator who reads that as excluding instruments routes it with an `owners`
        # entry for IE.
        "IE": frozenset({"eio"}),
        # Denmark did not take part in adopting Regulation (EU) 2018/1727 and is not
        # bound by it (Protocol No 22): Implementing Regulation (EU) 2025/2447, recital
        # 13 (../shared/reference/): so not its Eurojust instruments (art. 21, art. 21a);
        # nor the EIO, as above.
        "DK": frozenset({"eio", "eurojust-art21", "jit"}),
        # Eurojust's mandate is judicial cooperation in criminal matters (Regulation (EU)
        # 2018/1727, art. 3; recital 8 of 2025/2447): not maintenance, a civil matter.
        codes.EUROJUST: frozenset({"maintenance"}),
    }
)

# ISO 3166-1 alpha-2 in the EU's spelling. A third country's code is two letters; EL is
# Greece (GR refused), EC is the Commission (no owner of national entries).
_ALPHA2 = re.compile(r"[A-Z]{2}")
_NOT_A_COUNTRY: Final = MappingProxyType(
    {"GR": "Greece is EL", "EC": "EC is the Commission", "EU": "EU is no country"}
)


def third_country_code(value: str) -> str:
    """`value` as a code an operator may register (ValueError saying why not)."""
    code = codes.code_of(value)
    if not _ALPHA2.fullmatch(code):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 code (two letters)")
    if code in _NOT_A_COUNTRY:
        raise ValueError(f"{code!r} cannot be registered: {_NOT_A_COUNTRY[code]}")
    return code


def looks_like_owner(code: str) -> bool:
    """Could `code` be an owner (a default one, or two letters an operator may register)?"""
    return code in codes.OWNERS or (bool(_ALPHA2.fullmatch(code)) and code not in _NOT_A_COUNTRY)


def asked_owner(value: str, *, commission: bool = False) -> str:
    """`value` as the owner a query or command asks about: a member state, EJ (with
    `commission`, EC), or two letters a third country may be registered under (one that
    is not owns nothing); else ValueError with `codes.owner_code`'s sentence."""
    code = codes.code_of(value)
    return code if looks_like_owner(code) else codes.owner_code(value, commission=commission)


def default_instruments(owner: str) -> frozenset[str]:
    return frozenset(codes.INSTRUMENTS) - NOT_PARTICIPATING.get(owner, frozenset())


@dataclass(frozen=True)
class Registered:
    """An operator's `owners` entry: the name and instruments it gives a code."""

    name: str
    instruments: frozenset[str]


@dataclass(frozen=True)
class Owners:
    """Every owner and the instruments each takes part in: the defaults, with the
    registry's `owners` entries in place of theirs. `revision`: the registry revision the
    entries were read at (None: the defaults alone)."""

    registered: Mapping[str, Registered] = field(default_factory=dict)
    revision: int | None = None

    @classmethod
    def of(cls, documents: Iterable[Mapping[str, Any]], revision: int | None = None) -> Owners:
        """From the current documents of kind `owners`."""
        return cls(
            {d["code"]: Registered(d["name"], frozenset(d.get("instruments") or ()))
             for d in documents},
            revision,
        )  # fmt: skip

    def names(self) -> dict[str, str]:
        """Every owner's code and name: member states, EJ, then registered third countries."""
        out = dict(codes.OWNERS)
        for code, entry in sorted(self.registered.items()):
            out[code] = entry.name
        return out

    def countries(self) -> dict[str, str]:
        """The states a look-up may ask about: the member states and registered third
        countries (not Eurojust)."""
        return {c: n for c, n in self.names().items() if c != codes.EUROJUST}

    def is_owner(self, code: str) -> bool:
        return code in codes.OWNERS or code in self.registered

    def is_third_country(self, code: str) -> bool:
        return code in self.registered and code not in codes.OWNERS

    def instruments_of(self, owner: str) -> frozenset[str]:
        """What `owner` takes part in (nothing, if it is no owner)."""
        entry = self.registered.get(owner)
        if entry is not None:
            return entry.instruments
        return default_instruments(owner) if owner in codes.OWNERS else frozenset()

    def takes_part(self, owner: str, instrument: str) -> bool:
        return instrument in self.instruments_of(owner)

    def why_not(self, owner: str, instrument: str) -> str:
        """The sentence a refusal or an empty look-up says."""
        if not self.is_owner(owner):
            return f"{owner} is no owner of the registry (see GET /api/v1/code-lists/owners)"
        source = "its registered participation" if owner in self.registered else "the seed"
        return (f"{owner} does not take part in {instrument} ({source}: GET "
                "/api/v1/code-lists/participation)")  # fmt: skip

    def participation(self) -> list[dict[str, Any]]:
        """The participation code list's items: each owner, its name and instruments."""
        return [
            {"code": code, "label": name,
             "instruments": [i for i in codes.INSTRUMENTS if self.takes_part(code, i)]}
            for code, name in self.names().items()
        ]  # fmt: skip


DEFAULT: Final = Owners()
