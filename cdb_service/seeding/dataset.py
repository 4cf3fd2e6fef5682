"""Build the seed entries and the sample gazetteer from `seed/countries/*.json` (in the wheel).

Everything is derived deterministically from those files and the committed
access-point certificates, so loading it twice is a no-op: the second load finds
every entry unchanged and creates no revision.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdb_service.kernel import resources
from cdb_service.kernel.codes import EUROJUST, MEMBER_ROLES
from cdb_service.kernel.owners import DEFAULT
from cdb_service.lookup.gazetteer import Place

SEED_DIR = resources.seed_dir()
UNREGISTERED = "urn:oasis:names:tc:ebcore:partyid-type:unregistered"
RESPONDER = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/responder"
INITIATOR = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/initiator"
JUDEX_SERVICE = {
    "service": "urn:e-codex:services:judex:judicial-cooperation",
    "service_type": "urn:e-codex:services",
    "actions": ["SubmitRequest", "SubmitResponse", "Acknowledge"],
}


@dataclass
class SeedData:
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    gazetteer: dict[str, list[Place]] = field(default_factory=dict)

    def add(self, kind: str, document: dict[str, Any]) -> None:
        """One entry; a criterion only for an instrument its owner takes part in (no EIO
        for Ireland or Denmark: `kernel/owners.py`), as the registry would refuse it."""
        if kind == "jurisdiction-criteria" and not DEFAULT.takes_part(
            document["owner"], document["instrument"]
        ):
            return
        self.entries.append((kind, document))


# Bulgarian (streamlined system) and Greek (ELOT 743) romanisation, enough for city names.
_ROMAN = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s",
    "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "sht",
    "ъ": "a", "ь": "y", "ю": "yu", "я": "ya",
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i",
    "κ": "k", "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s",
    "ς": "s", "τ": "t", "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o",
})  # fmt: skip


def slug(text: str) -> str:
    romanised = unicodedata.normalize("NFD", text.lower()).translate(_ROMAN)
    ascii_text = unicodedata.normalize("NFKD", romanised).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z0-9]+", "-", ascii_text.upper()).strip("-")


def countries(seed_dir: Path = SEED_DIR) -> Iterator[dict[str, Any]]:
    for path in sorted((seed_dir / "countries").glob("*.json")):
        yield json.loads(path.read_text("utf-8"))


def build(seed_dir: Path = SEED_DIR) -> SeedData:
    data = SeedData()
    certificates = seed_dir / "certificates"
    data.add(
        "routing-parties", _party(EUROJUST, "eurojust-ap", "eurojust.example.eu", certificates)
    )
    data.add(
        "authorities",
        {
            "owner": EUROJUST,
            "code": "EJ:EUROJUST",
            "kind": "other",
            "names": {"en": "Eurojust", "fr": "Eurojust"},
            "address": {
                "street": "Johan de Wittlaan 9",
                "postal_code": "2517JR",
                "city": "Den Haag",
                "country": "NL",
            },
            "contacts": [{"channel": "email", "value": "registry@eurojust.example.eu"}],
            "languages": ["en", "fr"],
            "routing_party_name": "eurojust-ap",
        },
    )
    for country in countries(seed_dir):
        _add_country(data, country, certificates)
    return data


def _party(owner: str, name: str, domain: str, certificates: Path) -> dict[str, Any]:
    pem = (certificates / f"{name}.pem").read_text()
    return {
        "owner": owner,
        "name": name,
        "identifiers": [{"party_id": name, "party_id_type": UNREGISTERED}],
        "endpoint_url": f"https://ap.{domain}/domibus/services/msh",
        "roles": [INITIATOR, RESPONDER],
        "services": [JUDEX_SERVICE],
        "certificates": [{"use": "signing", "pem": pem}, {"use": "encryption", "pem": pem}],
    }


def _authority(
    cc: str,
    code: str,
    kind: str,
    spec: dict[str, Any],
    regions: list[dict[str, Any]],
    languages: list[str],
    domain: str,
    parent: str | None = None,
) -> dict[str, Any]:
    region = regions[spec.get("region", 0)] if "region" in spec else None
    city = region["city"] if region else spec.get("city", "")
    document: dict[str, Any] = {
        "owner": cc,
        "code": code,
        "kind": kind,
        "names": spec["names"],
        "address": {
            "street": spec.get("street"),
            "postal_code": spec.get("postal_code"),
            "city": city,
            "country": cc,
        },
        "contacts": [{"channel": "email", "value": f"{slug(code.split(':')[1]).lower()}@{domain}"}],
        "languages": sorted({*languages, "en"}),
        "routing_party_name": f"{cc.lower()}-justice-ap",
    }
    if parent:
        document["parent_code"] = parent
    return document


def _criterion(
    cc: str,
    ref: str,
    authority: str,
    instrument: str,
    competence: str,
    geo: list[dict[str, str]],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "owner": cc,
        "ref": ref,
        "authority_code": authority,
        "instrument": instrument,
        "competence": competence,
        "geo": geo,
        **extra,
    }


def _add_country(data: SeedData, country: dict[str, Any], certificates: Path) -> None:
    cc, languages, domain = country["country"], country["languages"], country["mail_domain"]
    regions = country["regions"]
    data.add("routing-parties", _party(cc, f"{cc.lower()}-justice-ap", domain, certificates))
    central, ministry, general = (
        f"{cc}:CENTRAL-AUTHORITY",
        f"{cc}:MINISTRY",
        f"{cc}:PROSECUTOR-GENERAL",
    )
    for code, kind, key in (
        (central, "central-authority", "central_authority"),
        (ministry, "ministry", "ministry"),
        (general, "prosecution", "general_prosecution"),
    ):
        data.add(
            "authorities", _authority(cc, code, kind, country[key], regions, languages, domain)
        )
    whole_country = [{"scheme": "country", "code": cc}]
    for index, region in enumerate(regions):
        city = slug(region["city"])
        court, prosecution = f"{cc}:COURT-{city}", f"{cc}:PROSECUTION-{city}"
        data.add(
            "authorities",
            _authority(
                cc, court, "court", region["court"] | {"region": index}, regions, languages, domain
            ),
        )
        data.add(
            "authorities",
            _authority(
                cc,
                prosecution,
                "prosecution",
                region["prosecution"] | {"region": index},
                regions,
                languages,
                domain,
                parent=general,
            ),
        )
        postal = [{"scheme": "postal-code", "code": code} for code in region["postal_codes"]]
        nuts3 = [{"scheme": "nuts3", "code": region["nuts3"]}]
        nuts2 = [{"scheme": "nuts2", "code": region["nuts3"][:4]}]
        lau = [{"scheme": "lau", "code": region["lau"]}]
        # Region 0 is keyed by postal codes, the others by NUTS3: both paths get exercised.
        eio_geo = postal if index == 0 else nuts3
        data.add(
            "jurisdiction-criteria",
            _criterion(cc, f"{cc}-EIO-EXECUTE-{index}", prosecution, "eio", "execute", eio_geo),
        )
        data.add(
            "jurisdiction-criteria",
            _criterion(
                cc,
                f"{cc}-EAW-EXECUTE-{index}",
                court,
                "eaw",
                "execute",
                nuts2 if index % 2 == 0 else lau,
            ),
        )
        data.add(
            "jurisdiction-criteria",
            _criterion(
                cc,
                f"{cc}-FREEZING-EXECUTE-{index}",
                court,
                "freezing-confiscation",
                "execute",
                nuts3,
                stages=["investigation", "prosecution", "trial"],
            ),
        )
        prefix = region["postal_codes"][0][:2]
        data.add(
            "jurisdiction-criteria",
            _criterion(
                cc,
                f"{cc}-PENALTIES-RECEIVE-{index}",
                court,
                "financial-penalties",
                "receive",
                [{"scheme": "postal-code-prefix", "code": prefix}],
            ),
        )
        data.gazetteer.setdefault(cc, []).extend(
            Place(code, region["lau"], region["nuts3"], region.get("lau_name"))
            for code in region["postal_codes"]
        )
    for ref, authority, instrument, competence, extra in (
        ("EIO-CENTRAL", central, "eio", "central", {}),
        ("EIO-RECEIVE-FALLBACK", general, "eio", "receive", {"priority": 900}),
        (
            "EIO-TERRORISM",
            general,
            "eio",
            "execute",
            {"subject_matters": ["terrorism"], "stages": ["investigation"], "priority": 10},
        ),
        ("EAW-CENTRAL", ministry, "eaw", "central", {}),
        ("FREEZING-CENTRAL", central, "freezing-confiscation", "central", {}),
        ("ART21-ISSUE", general, "eurojust-art21", "issue", {}),
        (
            "MAINTENANCE-RECEIVE",
            central,
            "maintenance",
            "receive",
            {"subject_matters": ["family-maintenance"]},
        ),
        ("MAINTENANCE-CENTRAL", central, "maintenance", "central", {}),
    ):
        data.add(
            "jurisdiction-criteria",
            _criterion(
                cc, f"{cc}-{ref}", authority, instrument, competence, whole_country, **extra
            ),
        )
    for kind, authority in (("eurojust", general), ("terrorism", general), ("ejn", ministry)):
        data.add(
            "national-correspondents",
            {
                "owner": cc,
                "ref": f"{cc}-NC-{kind.upper()}",
                "country": cc,
                "type": kind,
                "authority_code": authority,
                "contact": {"channel": "email", "value": f"nc-{kind}@{domain}"},
                "languages": sorted({*languages, "en"}),
            },
        )
    for role in MEMBER_ROLES:
        data.add(
            "national-members",
            {
                "owner": EUROJUST,
                "ref": f"EJ-{cc}-{role.upper()}",
                "country": cc,
                "role": role,
                "contact": {
                    "channel": "email",
                    "value": f"{cc.lower()}-{role}@eurojust.example.eu",
                },
                "languages": sorted({*languages, "en"}),
                "routing_party_name": "eurojust-ap",
            },
        )
