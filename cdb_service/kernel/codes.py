"""Code lists: the closed vocabularies entries are validated against.

They ship with the code because validation needs them synchronously and a new
value (a new instrument) comes with a release that knows how to route it.
`GET /code-lists/{name}` serves them as they are here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

COUNTRIES: Final = MappingProxyType(
    {
        "AT": "Austria", "BE": "Belgium", "BG": "Bulgaria", "CY": "Cyprus",
        "CZ": "Czechia", "DE": "Germany", "DK": "Denmark", "EE": "Estonia",
        "EL": "Greece", "ES": "Spain", "FI": "Finland", "FR": "France",
        "HR": "Croatia", "HU": "Hungary", "IE": "Ireland", "IT": "Italy",
        "LT": "Lithuania", "LU": "Luxembourg", "LV": "Latvia", "MT": "Malta",
        "NL": "Netherlands", "PL": "Poland", "PT": "Portugal", "RO": "Romania",
        "SE": "Sweden", "SI": "Slovenia", "SK": "Slovakia",
    }
)  # fmt: skip

EUROJUST: Final = "EJ"
# The Commission owns the entries of central components (maintenance windows).
COMMISSION: Final = "EC"
OWNERS: Final = MappingProxyType({**COUNTRIES, EUROJUST: "Eurojust"})
_OWNERS_AND_COMMISSION: Final = MappingProxyType({**OWNERS, COMMISSION: "European Commission"})
# What a refusal of a country or owner code adds: the one code people get wrong.
GREECE_HINT: Final = "; Greece is EL"


def code_of(value: str) -> str:
    """A country or owner code in its one spelling: people type ` de` and `De`, the
    registry stores, compares and filters `DE`."""
    return value.strip().upper()


def owner_code(value: str, *, commission: bool = False) -> str:
    """`value` as an owner code (a member state, or EJ; with `commission`, EC too, which
    owns the records of central components), or ValueError saying which codes are."""
    code = code_of(value)
    owners = _OWNERS_AND_COMMISSION if commission else OWNERS
    if code not in owners:
        raise ValueError(unknown_code(code, "owners", owners, GREECE_HINT))
    return code


def desk_code(country: str) -> str:
    """The finalRecipient of a national desk at Eurojust."""
    return f"EJ:{country}-DESK"


LANGUAGES: Final = MappingProxyType(
    {
        "bg": "Bulgarian", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
        "en": "English", "es": "Spanish", "et": "Estonian", "fi": "Finnish", "fr": "French",
        "ga": "Irish", "hr": "Croatian", "hu": "Hungarian", "it": "Italian",
        "lt": "Lithuanian", "lv": "Latvian", "mt": "Maltese", "nl": "Dutch", "pl": "Polish",
        "pt": "Portuguese", "ro": "Romanian", "sk": "Slovak", "sl": "Slovenian",
        "sv": "Swedish",
    }
)  # fmt: skip

AUTHORITY_KINDS: Final = MappingProxyType(
    {
        "court": "Court or tribunal",
        "prosecution": "Public prosecution office",
        "central-authority": "Central authority",
        "ministry": "Ministry",
        "judicial-police": "Judicial police",
        "other": "Other competent authority",
    }
)

# The EU official languages of each member state (those its authorities' names are
# expected in, with English: the data-quality report asks for at least one of them).
OFFICIAL_LANGUAGES: Final = MappingProxyType(
    {
        "AT": ("de",), "BE": ("nl", "fr", "de"), "BG": ("bg",), "CY": ("el",), "CZ": ("cs",),
        "DE": ("de",), "DK": ("da",), "EE": ("et",), "EL": ("el",), "ES": ("es",),
        "FI": ("fi", "sv"), "FR": ("fr",), "HR": ("hr",), "HU": ("hu",), "IE": ("ga", "en"),
        "IT": ("it",), "LT": ("lt",), "LU": ("fr", "de"), "LV": ("lv",), "MT": ("mt", "en"),
        "NL": ("nl",), "PL": ("pl",), "PT": ("pt",), "RO": ("ro",), "SE": ("sv",),
        "SI": ("sl",), "SK": ("sk",),
    }
)  # fmt: skip

INSTRUMENTS: Final = MappingProxyType(
    {
        "eio": "European Investigation Order (Directive 2014/41/EU)",
        "eaw": "European Arrest Warrant (Framework Decision 2002/584/JHA)",
        "freezing-confiscation": "Freezing and confiscation orders (Regulation (EU) 2018/1805)",
        "eurojust-art21": "Information to Eurojust (Regulation (EU) 2018/1727, art. 21)",
        "jit": "Joint investigation teams (Regulation (EU) 2018/1727, art. 21a)",
        "maintenance": "Maintenance obligations (Regulation (EC) No 4/2009; HCCH 2007)",
        "financial-penalties": "Financial penalties (Framework Decision 2005/214/JHA)",
        "custodial-sentences": "Custodial sentences (Framework Decision 2008/909/JHA)",
        "probation": "Probation and alternative sanctions (Framework Decision 2008/947/JHA)",
        "supervision-measures": "Supervision measures (Framework Decision 2009/829/JHA)",
        "protection-order": "European Protection Order (Directive 2011/99/EU)",
        "transfer-of-proceedings": "Transfer of proceedings (Regulation (EU) 2023/2780)",
    }
)

# Instruments for which Eurojust itself is the recipient: only for these may Eurojust's
# jurisdiction criteria name member states' places (DESIGN.md, "Owner").
EUROJUST_RECIPIENT: Final = frozenset({"eurojust-art21", "jit"})

COMPETENCES: Final = MappingProxyType(
    {
        "receive": "Receives requests",
        "execute": "Executes requests",
        "issue": "Issues requests",
        "central": "Central authority assisting the competent authorities",
    }
)

SUBJECT_MATTERS: Final = MappingProxyType(
    {
        "terrorism": "Terrorism",
        "organised-crime": "Organised crime",
        "drug-trafficking": "Drug trafficking",
        "trafficking-in-human-beings": "Trafficking in human beings",
        "migrant-smuggling": "Migrant smuggling",
        "cybercrime": "Cybercrime",
        "fraud": "Fraud",
        "money-laundering": "Money laundering",
        "corruption": "Corruption",
        "environmental-crime": "Environmental crime",
        "core-international-crimes": "Genocide, crimes against humanity and war crimes",
        "child-sexual-abuse": "Child sexual abuse",
        "violent-crime": "Murder and grievous bodily injury",
        "family-maintenance": "Family maintenance",
        "other": "Other",
    }
)

STAGES: Final = MappingProxyType(
    {
        "investigation": "Investigation (pre-trial)",
        "prosecution": "Prosecution",
        "trial": "Trial",
        "appeal": "Appeal",
        "enforcement": "Enforcement of a decision",
    }
)

PARTY_ID_TYPES: Final = MappingProxyType(
    {
        "urn:oasis:names:tc:ebcore:partyid-type:unregistered": "Unregistered (e-CODEX default)",
        "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0088": "GS1 Global Location Number",
        "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0060": "Data Universal Numbering System",
        "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0199": "Legal Entity Identifier",
        "urn:oasis:names:tc:ebcore:partyid-type:iso6523:0204": "Leitweg-ID (DE)",
    }
)

CORRESPONDENT_TYPES: Final = MappingProxyType(
    {
        "eurojust": "National correspondent for Eurojust (art. 20(3))",
        "terrorism": "National correspondent for terrorism matters (art. 20(3))",
        "ejn": "European Judicial Network contact point (art. 20(3))",
        "jit": "Joint investigation teams network expert (art. 20(3))",
        "core-international-crimes": "Genocide network contact point (art. 20(3))",
        "other": "Other ENCS member (art. 20(3))",
    }
)

MEMBER_ROLES: Final = MappingProxyType(
    {
        "national-member": "National member (art. 7(1))",
        "deputy": "Deputy (art. 7(2))",
        "assistant": "Assistant (art. 7(2))",
    }
)

GEO_SCHEMES: Final = MappingProxyType(
    {
        "postal-code": "A postal code",
        "postal-code-prefix": "Every postal code starting with these characters",
        "lau": "Local administrative unit (Eurostat LAU)",
        "nuts3": "NUTS level 3 region",
        "nuts2": "NUTS level 2 region",
        "nuts1": "NUTS level 1 region",
        "country": "The whole member state",
    }
)

CERTIFICATE_USES: Final = MappingProxyType(
    {
        "signing": "AS4 message signing",
        "encryption": "AS4 message encryption",
        "tls": "TLS server or client authentication",
    }
)

CONTACT_CHANNELS: Final = MappingProxyType(
    {"email": "Functional mailbox", "phone": "Telephone", "fax": "Fax", "web": "Web page"}
)

CODE_LISTS: Final = MappingProxyType(
    {
        "countries": COUNTRIES,
        "owners": OWNERS,
        "languages": LANGUAGES,
        "authority-kinds": AUTHORITY_KINDS,
        "instruments": INSTRUMENTS,
        "competences": COMPETENCES,
        "subject-matters": SUBJECT_MATTERS,
        "stages": STAGES,
        "party-id-types": PARTY_ID_TYPES,
        "correspondent-types": CORRESPONDENT_TYPES,
        "member-roles": MEMBER_ROLES,
        "geo-schemes": GEO_SCHEMES,
        "certificate-uses": CERTIFICATE_USES,
        "contact-channels": CONTACT_CHANNELS,
    }
)

# Where a code list comes from, when it is an authority's list rather than the service's
# own (stated in the contract: the XSD's annotation of the list's type).
CODE_LIST_SOURCES: Final = MappingProxyType(
    {
        "languages": "The ISO 639-1 codes (two letters, lower case) of the 24 official "
        "languages of the European Union, as the Publications Office's EU Vocabularies "
        "authority table `language` gives them (http://publications.europa.eu/resource/"
        "authority/language, property ISO 639-1).",
        "countries": "The 27 EU member states' two-letter codes as the Interinstitutional "
        "Style Guide gives them: ISO 3166-1 alpha-2, except EL for Greece.",
    }
)

# Facts about some codes, served beside their labels (`GET /code-lists/{name}`).
CODE_FLAGS: Final = MappingProxyType(
    {"instruments": MappingProxyType({"eurojust_recipient": EUROJUST_RECIPIENT})}
)

_LISTED_UP_TO = 30


def unknown_code(value: object, code_list: str, values: Mapping[str, str], hint: str = "") -> str:
    """Why `value` is refused, and what would be accepted: the allowed values when the
    list is short enough to read in one line, otherwise the closest ones and where the
    whole list is served."""
    allowed = sorted(values)
    text = f"{value!r} is not in the code list {code_list!r}{hint}"
    if len(allowed) <= _LISTED_UP_TO:
        return f"{text}; allowed: {', '.join(allowed)}"
    close = difflib.get_close_matches(str(value), allowed, n=3, cutoff=0.5)
    maybe = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{text}{maybe} (all values: GET /api/v1/code-lists/{code_list})"


# Postal code shapes in canonical form (upper case, no spaces, no country prefix):
# 9 a digit, A a letter, X a letter or digit, anything else itself.
POSTAL_CODE_SHAPES: Final = MappingProxyType(
    {
        "AT": "9999", "BE": "9999", "BG": "9999", "CY": "9999", "CZ": "99999",
        "DE": "99999", "DK": "9999", "EE": "99999", "EL": "99999", "ES": "99999",
        "FI": "99999", "FR": "99999", "HR": "99999", "HU": "9999", "IE": "A9XXXXX",
        "IT": "99999", "LT": "99999", "LU": "9999", "LV": "9999", "MT": "AAA9999",
        "NL": "9999AA", "PL": "99-999", "PT": "9999-999", "RO": "999999", "SE": "99999",
        "SI": "9999", "SK": "99999",
    }
)  # fmt: skip

_CLASS = {"9": "[0-9]", "A": "[A-Z]", "X": "[0-9A-Z]"}


def _shape_regex(shape: str) -> re.Pattern[str]:
    return re.compile("".join(_CLASS.get(c, re.escape(c)) for c in shape))


POSTAL_CODE_PATTERNS: Final = MappingProxyType(
    {cc: _shape_regex(shape) for cc, shape in POSTAL_CODE_SHAPES.items()}
)
