"""The Domibus PMode configuration of a routing table, always valid whatever was typed.

Built with lxml (never by joining strings) and validated against `pmode.xsd` before it
leaves: the schema this builder promises, with Domibus's own value rules. A party whose
data cannot be expressed validly (text XML cannot carry, a value longer than Domibus
takes, ...) is left out of every PMode and named in `Pmode.omitted`, so that one owner's
mistake never breaks the configuration of all the others; the routing table's JSON and
the data-quality report name it too (`inexpressible`).

Modelled on Domibus's sample configuration: one party per routing party, one
partyIdType per party id type in use, one service per (service, type), the union of
actions, one leg per service and action, and one process per service whose
initiators and responders are the parties that offer it in that role.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from cdb_service.kernel.resources import packaged

DOMIBUS_NS = "http://domibus.eu/configuration"
EBMS = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/"
INITIATOR_ROLE = EBMS + "initiator"
RESPONDER_ROLE = EBMS + "responder"
# The AS4 test service and action (ebMS3 5.2.2): every access point answers them, and
# they keep the PMode complete (the schema wants at least one leg) for any registry.
TEST_SERVICE = EBMS + "service"
TEST_ACTION = EBMS + "test"
MAX_NAME = 255  # the schema's max255-non-empty-string
SCHEMA_FILE = packaged("cdb_service.distribution", "pmode.xsd")


@functools.cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE)))


class InvalidPmode(Exception):
    """The builder made a document its own schema refuses: a bug here, not bad data."""


@dataclass(frozen=True)
class Pmode:
    xml: bytes
    # (party name, why it could not be expressed), in name order
    omitted: list[tuple[str, str]] = field(default_factory=list)


def inexpressible(party: dict[str, Any]) -> str | None:
    """Why this party cannot appear in a valid PMode, or None if it can."""
    return _inexpressible(json.dumps(party, sort_keys=True, default=str))


@functools.lru_cache(maxsize=4096)
def _inexpressible(party_json: str) -> str | None:
    # Cached by content: a routing table has few parties and they rarely change, while
    # connectors poll it every few minutes.
    party = json.loads(party_json)
    try:
        document = _document([party], party["name"])
    except ValueError as error:
        return f"holds text that XML cannot carry ({error})"
    return _schema_error(document)


def _schema_error(document: bytes) -> str | None:
    checker = schema()
    if checker.validate(etree.fromstring(document)):
        return None
    first = checker.error_log.last_error
    return f"{first.message} (line {first.line})" if first else "not valid"


def build(parties: Sequence[dict[str, Any]], receiving_party: str) -> Pmode:
    """A complete PMode whose own party is `receiving_party`, without the parties that
    cannot be expressed. The receiving party itself must be expressible."""
    omitted = [(p["name"], why) for p in parties if (why := inexpressible(p)) is not None]
    left_out = {name for name, _ in omitted}
    kept = [p for p in parties if p["name"] not in left_out]
    document = _document(kept, receiving_party)
    problem = _schema_error(document)
    if problem is not None:
        raise InvalidPmode(problem)
    return Pmode(document, omitted)


class Names:
    """Deterministic PMode identifiers (`name` attributes) for arbitrary values.

    Values such as URNs become `[A-Za-z0-9_]` words of at most 255 characters; two values
    that come out the same are told apart by a short hash of the original value, so a
    name depends only on its value and on which other values share its stem.
    """

    def __init__(self, reserved: dict[str, str] | None = None) -> None:
        self._by_value: dict[str, str] = {}
        self._taken: set[str] = set()
        for value, name in (reserved or {}).items():
            self._by_value[value] = name
            self._taken.add(name)

    def __call__(self, value: str) -> str:
        if value in self._by_value:
            return self._by_value[value]
        name = sanitise(value)
        if name in self._taken:
            name = sanitise(f"{name[: MAX_NAME - 9]}_{_short_hash(value)}")
        self._by_value[value] = name
        self._taken.add(name)
        return name


def _short_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def sanitise(value: str) -> str:
    """A word of letters, digits and `_`, 1–255 characters, starting with a letter."""
    word = re.sub(r"[^A-Za-z0-9]+", "_", value).strip("_")
    if not word:
        word = "x_" + _short_hash(value)
    if not word[0].isalpha():
        word = "x_" + word
    if len(word) > MAX_NAME:
        word = f"{word[: MAX_NAME - 9]}_{_short_hash(value)}"
    return word


def _party_id_type_name(urn: str) -> str:
    """`…:partyid-type:unregistered` → `unregistered`, `…:iso6523:0088` → `iso6523_0088`."""
    _, marker, tail = urn.partition("partyid-type:")
    return sanitise(tail if marker and tail else urn)


def _sub(parent: Any, tag: str, **attributes: str | None) -> Any:
    # lxml refuses what XML cannot carry (controls, lone surrogates) with ValueError.
    return etree.SubElement(parent, tag, {k: v for k, v in attributes.items() if v is not None})


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _document(parties: list[dict[str, Any]], receiving_party: str) -> bytes:
    """A complete Domibus PMode configuration whose own party is `receiving_party`.

    Modelled on Domibus's sample configuration: one party per routing party, one
    partyIdType per party id type in use, one service per (service, type), the union of
    actions, one leg per service and action, and one process per service whose
    initiators and responders are the parties that offer it in that role.
    """
    assert parties, "a PMode needs at least one party"
    root = etree.Element(f"{{{DOMIBUS_NS}}}configuration", {"party": receiving_party},
                         nsmap={"db": DOMIBUS_NS})  # fmt: skip

    mpcs = _sub(root, "mpcs")
    _sub(mpcs, "mpc", name="defaultMpc", qualifiedName=EBMS + "defaultMpc", enabled="true",
         default="true", retention_downloaded="0", retention_undownloaded="14400")  # fmt: skip

    bp = _sub(root, "businessProcesses")

    # roles: the two ebMS roles, then any other role a party names
    role_names = Names(
        {INITIATOR_ROLE: "defaultInitiatorRole", RESPONDER_ROLE: "defaultResponderRole"}
    )
    roles = _sub(bp, "roles")
    all_roles = _distinct(
        [INITIATOR_ROLE, RESPONDER_ROLE, *sorted({r for p in parties for r in p["roles"]})]
    )
    for role in all_roles:
        _sub(roles, "role", name=role_names(role), value=role)

    # parties, with one partyIdType per party id type in use
    type_names = Names()
    id_types = sorted({i["party_id_type"] for p in parties for i in p["identifiers"]})
    type_name = {urn: type_names(_party_id_type_name(urn)) for urn in id_types}
    parties_el = _sub(bp, "parties")
    types_el = _sub(parties_el, "partyIdTypes")
    for urn in id_types:
        _sub(types_el, "partyIdType", name=type_name[urn], value=urn)
    for party in parties:
        party_el = _sub(parties_el, "party", name=party["name"], endpoint=party["endpoint_url"],
                        allowChunking="false")  # fmt: skip
        for identifier in party["identifiers"]:
            _sub(party_el, "identifier", partyId=identifier["party_id"],
                 partyIdType=type_name[identifier["party_id_type"]])  # fmt: skip

    meps = _sub(bp, "meps")
    _sub(meps, "mep", name="oneway", value=EBMS + "oneWay")
    _sub(meps, "binding", name="push", value=EBMS + "push")

    # the e-CODEX message properties: who sent it, and to which authority it goes
    properties = _sub(bp, "properties")
    _sub(properties, "property", name="originalSenderProperty", key="originalSender",
         datatype="string", required="true")  # fmt: skip
    _sub(properties, "property", name="finalRecipientProperty", key="finalRecipient",
         datatype="string", required="true")  # fmt: skip
    property_set = _sub(properties, "propertySet", name="eCodexPropertySet")
    _sub(property_set, "propertyRef", property="finalRecipientProperty")
    _sub(property_set, "propertyRef", property="originalSenderProperty")

    _sub(bp, "payloadProfiles")

    securities = _sub(bp, "securities")
    _sub(securities, "security", name="eDeliveryAS4Policy", policy="eDeliveryAS4Policy.xml",
         signatureMethod="RSA_SHA256")  # fmt: skip

    error_handlings = _sub(bp, "errorHandlings")
    _sub(error_handlings, "errorHandling", name="defaultErrorHandling", errorAsResponse="true",
         businessErrorNotifyProducer="true", businessErrorNotifyConsumer="true",
         deliveryFailureNotifyProducer="true")  # fmt: skip

    agreements = _sub(bp, "agreements")
    _sub(agreements, "agreement", name="agreementEmpty", value="", type="")

    # services: one per (service, type) offered, then the AS4 test service
    offered: dict[tuple[str, str | None], dict[str, Any]] = {}
    for party in parties:
        for service in party["services"]:
            key = (service["service"], service.get("service_type"))
            entry = offered.setdefault(key, {"actions": set(), "parties": []})
            entry["actions"].update(service["actions"])
            if party["name"] not in entry["parties"]:
                entry["parties"].append(party["name"])
    service_keys = sorted(offered, key=lambda k: (k[0], k[1] or ""))
    service_name = _service_names(service_keys)
    test_key: tuple[str, str | None] = (TEST_SERVICE, None)
    service_name[test_key] = _free_name("testService", set(service_name.values()))
    services = _sub(bp, "services")
    for key in [*service_keys, test_key]:
        _sub(services, "service", name=service_name[key], value=key[0], type=key[1])

    # actions: the union of the parties' actions, then the AS4 test action
    action_values = sorted({a for entry in offered.values() for a in entry["actions"]})
    action_names = Names()
    action_name = {a: action_names(a) for a in action_values}
    if TEST_ACTION not in action_name:
        action_name[TEST_ACTION] = _free_name("testAction", set(action_name.values()))
        action_values.append(TEST_ACTION)
    actions = _sub(bp, "actions")
    for value in action_values:
        _sub(actions, "action", name=action_name[value], value=value)

    as4 = _sub(bp, "as4")
    _sub(as4, "receptionAwareness", name="receptionAwareness", retry="12;4;CONSTANT",
         duplicateDetection="true")  # fmt: skip
    _sub(as4, "reliability", name="AS4Reliability", nonRepudiation="true", replyPattern="response")

    # legs: one per service and action
    leg_names = Names()
    legs: dict[tuple[str, str | None], list[str]] = {}
    leg_configurations = _sub(bp, "legConfigurations")
    pairs = [(k, a) for k in service_keys for a in sorted(offered[k]["actions"])]
    pairs.append((test_key, TEST_ACTION))
    for key, action in pairs:
        name = leg_names(f"{service_name[key]}_{action_name[action]}")
        legs.setdefault(key, []).append(name)
        _sub(leg_configurations, "legConfiguration", name=name, service=service_name[key],
             action=action_name[action], defaultMpc="defaultMpc", reliability="AS4Reliability",
             security="eDeliveryAS4Policy", receptionAwareness="receptionAwareness",
             propertySet="eCodexPropertySet" if key != test_key else None,
             errorHandling="defaultErrorHandling", compressPayloads="true")  # fmt: skip

    # processes: one per service; initiators and responders are the parties offering it
    process_names = Names()
    by_name = {p["name"]: p for p in parties}
    for key in [*service_keys, test_key]:
        if key == test_key:
            members = [p["name"] for p in parties]
            initiators, responders = members, members
        else:
            members = offered[key]["parties"]
            initiators = [m for m in members if _plays(by_name[m], "initiator")]
            responders = [m for m in members if _plays(by_name[m], "responder")]
        process = _sub(bp, "process", name=process_names(f"{service_name[key]}Process"),
                       agreement="agreementEmpty", mep="oneway", binding="push",
                       initiatorRole="defaultInitiatorRole",
                       responderRole="defaultResponderRole")  # fmt: skip
        if initiators:
            listed = _sub(process, "initiatorParties")
            for name in initiators:
                _sub(listed, "initiatorParty", name=name)
        if responders:
            listed = _sub(process, "responderParties")
            for name in responders:
                _sub(listed, "responderParty", name=name)
        legs_el = _sub(process, "legs")
        for name in legs[key]:
            _sub(legs_el, "leg", name=name)

    etree.indent(root, space="  ")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8")) + b"\n"


def _plays(party: dict[str, Any], word: str) -> bool:
    """Whether a party takes the initiator / responder role; naming neither means both."""
    named = [
        r.lower() for r in party["roles"] if "initiator" in r.lower() or "responder" in r.lower()
    ]
    return not named or any(word in r for r in named)


def _service_names(keys: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], str]:
    names = Names()
    out: dict[tuple[str, str | None], str] = {}
    stems: dict[str, int] = {}
    for value, _ in keys:
        stems[value] = stems.get(value, 0) + 1
    for key in keys:
        value, kind = key
        # the same service value under two types: the type joins the name
        out[key] = names(value if stems[value] == 1 or kind is None else f"{value}_{kind}")
    return out


def _free_name(wanted: str, taken: set[str]) -> str:
    name, n = wanted, 1
    while name in taken:
        n += 1
        name = f"{wanted}{n}"
    return name
