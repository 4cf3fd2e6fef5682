"""Gazetteer files in Eurostat's TERCET layout, written here, a few hundred rows a state.

Real files (`pc2024_IE_NUTS-2024_v1.0.csv` …) have a `NUTS3;CODE` header and each
value in single quotes; each state keys postal codes its own way: Ireland by Eircode
routing key, Malta by locality code, the Netherlands with a space before the
letters, Portugal and Poland with a hyphen, Latvia with its `LV-` prefix, Czechia
with a space. The codes below have those shapes (not every one is a real code).
`typed` is what a sender would type for one of them, and its NUTS 3 region.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class TercetFixture:
    country: str
    text: str
    rows: int
    typed: str  # a postal code as a sender types it
    nuts3: str  # the region it lies in
    spanning: str | None = None  # a code listed under two regions


def _file(rows: list[tuple[str, str]], header: str = "NUTS3;CODE", quote: str = "'") -> str:
    lines = [header] + [f"{quote}{n3}{quote};{quote}{code}{quote}" for n3, code in rows]
    return "\n".join(lines) + "\n"


def _ie(rnd: random.Random) -> TercetFixture:
    regions = ["IE041", "IE042", "IE051", "IE052", "IE053", "IE061", "IE062", "IE063"]
    keys = [f"{a}{d:02d}" for a in "ACDEFHKNPRTVWXY" for d in range(10, 100, 7)]
    keys = sorted({*keys, "A41", "D01", "D6W", "P47"})
    rows = [(rnd.choice(regions), key) for key in keys if key != "A41"]
    rows += [("IE062", "A41"), ("IE061", "D6W")]
    return TercetFixture("IE", _file(rows), len(rows), "A41 F2X3", "IE062")


def _mt(rnd: random.Random) -> TercetFixture:
    letters = "ABDFGHKLMNPQRSTVXZ"
    codes = sorted({"".join(rnd.choice(letters) for _ in range(3)) for _ in range(260)})
    codes = [c for c in codes if c not in ("ATD", "FNT", "ZTN")]
    rows = [(rnd.choice(["MT001", "MT002"]), c) for c in codes]
    rows += [("MT001", "ATD"), ("MT002", "FNT"), ("MT001", "ZTN")]
    return TercetFixture("MT", _file(rows), len(rows), "ATD 1234", "MT001")


def _nl(rnd: random.Random) -> TercetFixture:
    regions = ["NL321", "NL323", "NL324", "NL325", "NL327", "NL328", "NL329", "NL32B"]
    rows = [(rnd.choice(regions), f"{rnd.randint(1000, 9999)} {a}{b}")
            for a, b in itertools.islice(itertools.product("ABCEGHJKLMNPRSTVWXZ", repeat=2),
                                         300)]  # fmt: skip
    rows = [r for r in rows if not r[1].startswith("1724")] + [("NL325", "1724 TE")]
    # The header quoted too, as some copies of the files have it.
    return TercetFixture("NL", _file(rows, '"NUTS3";"CODE"', '"'), len(rows), "1724te", "NL325")


def _pt(rnd: random.Random) -> TercetFixture:
    regions = ["PT187", "PT16B", "PT170", "PT11A", "PT150"]
    codes = sorted({f"{rnd.randint(1000, 9999)}-{rnd.randint(0, 999):03d}" for _ in range(300)})
    rows = [(rnd.choice(regions), c) for c in codes if not c.startswith("7000")]
    rows += [("PT187", "7000-674"), ("PT187", "7000-001")]
    return TercetFixture("PT", _file(rows), len(rows), "7000674", "PT187")


def _lv(rnd: random.Random) -> TercetFixture:
    regions = ["LV003", "LV005", "LV006", "LV007", "LV008", "LV009"]
    codes = sorted({rnd.randint(1001, 5799) for _ in range(300)} - {3281, 1050})
    rows = [(rnd.choice(regions), f"LV-{c}") for c in codes]
    rows += [("LV003", "LV-3281"), ("LV006", "LV-1050"), ("LV007", "LV-1050")]
    return TercetFixture("LV", _file(rows), len(rows), "LV 3281", "LV003", spanning="1050")


def _cz(rnd: random.Random) -> TercetFixture:
    regions = ["CZ010", "CZ020", "CZ031", "CZ032", "CZ041", "CZ064", "CZ080"]
    codes = sorted({f"{rnd.randint(100, 799)} {rnd.randint(0, 99):02d}" for _ in range(300)})
    rows = [(rnd.choice(regions), c) for c in codes if c != "398 15"]
    rows += [("CZ031", "398 15")]
    return TercetFixture("CZ", _file(rows), len(rows), "39815", "CZ031")


def _pl(rnd: random.Random) -> TercetFixture:
    regions = ["PL213", "PL22A", "PL22B", "PL911", "PL414"]
    codes = sorted({f"{rnd.randint(0, 99):02d}-{rnd.randint(0, 999):03d}" for _ in range(300)})
    rows = [(rnd.choice(regions), c) for c in codes if c != "40-527"] + [("PL22A", "40-527")]
    return TercetFixture("PL", _file(rows), len(rows), "40527", "PL22A")


def fixtures(seed: int = 13) -> list[TercetFixture]:
    rnd = random.Random(seed)
    return [make(rnd) for make in (_ie, _mt, _nl, _pt, _lv, _cz, _pl)]
