"""The routing table (Annex I 7.2(c)): every routing party with the recipients it serves.

One consistent snapshot of the registry is read (`read_snapshot`): the routing parties
valid on the day, and the authorities and national members valid on the day that name
them. From it come two shapes: JSON for any client, and a Domibus PMode configuration
(XML) that an e-CODEX access point can upload as it is. The PMode is built with the
standard library's ElementTree, so the service does not need lxml.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.db import documents
from cdb_service.db import revisions as rev
from cdb_service.db.documents import document_of
from cdb_service.kernel import codes
from cdb_service.registry.authorities.models import Authority
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.national_members.models import NationalMember
from cdb_service.registry.routing_parties.models import RoutingParty

DOMIBUS_NS = "http://domibus.eu/configuration"
EBMS = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/"
INITIATOR_ROLE = EBMS + "initiator"
RESPONDER_ROLE = EBMS + "responder"
# The AS4 test service and action (ebMS3 5.2.2): every access point answers them, and
# they keep the PMode complete (the schema wants at least one leg) for any registry.
TEST_SERVICE = EBMS + "service"
TEST_ACTION = EBMS + "test"
MAX_NAME = 255  # the schema's max255-non-empty-string


@dataclass
class RoutingTable:
    revision: int
    day: dt.date
    parties: list[dict[str, Any]] = field(default_factory=list)

    def party_names(self) -> list[str]:
        return [p["name"] for p in self.parties]

    def digest(self) -> str:
        """A digest of what a connector acts on: the parties and the recipients they serve.

        It leaves out the revision and the day, so a write elsewhere (an authority's
        phone number, a criterion) or a new day leaves it as it was, and connectors do
        not reload a PMode that would come out the same.
        """
        canonical = json.dumps(self.parties, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


class TableDigests:
    """The routing table's digest per (revision, day), as far as this process has read it.

    A conditional GET at a revision already seen is answered from here without any
    database work; the few most recent entries are kept.
    """

    KEEP = 8

    def __init__(self) -> None:
        self._known: dict[tuple[int, dt.date], str] = {}

    def get(self, revision: int, day: dt.date) -> str | None:
        return self._known.get((revision, day))

    def put(self, revision: int, day: dt.date, digest: str) -> None:
        self._known[(revision, day)] = digest
        while len(self._known) > self.KEEP:
            del self._known[next(iter(self._known))]


async def read_table(session: AsyncSession, day: dt.date) -> RoutingTable:
    """The routing table of the session's snapshot (open it with `read_snapshot`)."""
    revision = await rev.head_revision(session)
    kind = KINDS["routing-parties"]
    rows = (
        await session.scalars(
            select(RoutingParty)
            .where(rev.valid_on(RoutingParty, day))
            .order_by(RoutingParty.name, RoutingParty.id)
        )
    ).all()
    recipients: dict[uuid.UUID, set[str]] = {row.id: set() for row in rows}
    if recipients:
        ids = list(recipients)
        authorities = await session.execute(
            select(Authority.routing_party_id, Authority.code).where(
                Authority.routing_party_id.in_(ids), rev.valid_on(Authority, day)
            )
        )
        for party_id, code in authorities:
            if party_id is not None:
                recipients[party_id].add(code)
        members = await session.execute(
            select(NationalMember.routing_party_id, NationalMember.country).where(
                NationalMember.routing_party_id.in_(ids), rev.valid_on(NationalMember, day)
            )
        )
        for party_id, country in members:
            if party_id is not None:
                recipients[party_id].add(codes.desk_code(country))
    parties = [_party_json(document_of(kind, row), sorted(recipients[row.id])) for row in rows]
    return RoutingTable(revision, day, parties)


def _party_json(doc: dict[str, Any], final_recipients: list[str]) -> dict[str, Any]:
    return {
        "id": doc["id"],
        "name": doc["name"],
        "owner": doc["owner"],
        "identifiers": [
            {"party_id": i["party_id"], "party_id_type": i["party_id_type"]}
            for i in doc["identifiers"]
        ],
        "endpoint_url": doc["endpoint_url"],
        "roles": list(doc["roles"]),
        "services": [
            {
                "service": s["service"],
                "service_type": s.get("service_type"),
                "actions": list(s["actions"]),
            }
            for s in doc["services"]
        ],
        "certificates": [
            {
                "use": c.get("use"),
                "sha256": c.get("sha256"),
                "subject": c.get("subject"),
                "not_after": c.get("not_after"),
                "pem": c.get("pem"),
            }
            for c in doc["certificates"]
        ],
        "go_live_at": doc.get("go_live_at"),
        "valid_from": doc.get("valid_from"),
        "valid_to": doc.get("valid_to"),
        "final_recipients": final_recipients,
    }


def as_json(table: RoutingTable, generated_at: dt.datetime) -> dict[str, Any]:
    return {
        "revision": table.revision,
        "valid_at": table.day.isoformat(),
        "generated_at": documents.to_json_value(generated_at),
        "parties": table.parties,
    }


# --- Domibus PMode --------------------------------------------------------------------------


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


def _sub(parent: ET.Element, tag: str, **attributes: str | None) -> ET.Element:
    return ET.SubElement(parent, tag, {k: v for k, v in attributes.items() if v is not None})


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def as_pmode(table: RoutingTable, receiving_party: str) -> bytes:
    """A complete Domibus PMode configuration whose own party is `receiving_party`.

    Modelled on Domibus's sample configuration: one party per routing party, one
    partyIdType per party id type in use, one service per (service, type), the union of
    actions, one leg per service and action, and one process per service whose
    initiators and responders are the parties that offer it in that role.
    """
    parties = table.parties
    assert parties, "a PMode needs at least one party"
    root = ET.Element("db:configuration", {"xmlns:db": DOMIBUS_NS, "party": receiving_party})

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

    ET.indent(root, space="  ")
    text = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{text}\n'.encode()


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
