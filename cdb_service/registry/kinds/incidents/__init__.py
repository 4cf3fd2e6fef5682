"""Incidents (Annex I 6.10): unexpected unavailability, notified without delay.

Operators open one (start, description, expected recovery time), update it and close
it by setting `ended_at`; the probe opens one itself when it confirms an outage
(`source: probe`, see `probe/runner.py`). An incident is never deleted.

Each keeps when it started, was detected (`detected_at`: given by the probe, else the
time it was recorded), was notified (`notified_at`: set by the server when the
registry published it, never changed), is expected to recover and actually ended;
`status` (`open`/`closed`) is derived from `ended_at`.

Who: operators (`cdb.operator`) for any owner, including EC (the central service);
an administrator of a member state (or EJ) may open and update incidents of its own
owner, for its national components, and never EC's (the owner rules of
`security.policy`, as for every kind).
"""

from cdb_service.registry.kinds.filters import Filter
from cdb_service.registry.kinds.incidents.models import Incident, derive
from cdb_service.registry.kinds.incidents.schemas import IncidentIn
from cdb_service.registry.kinds.spec import KindSpec

SPEC = KindSpec(
    name="incidents",
    model=Incident,
    schema=IncidentIn,
    natural_key="ref",
    natural_key_global=False,
    filters=(
        Filter("ref", "ref"),
        Filter("component", "component"),
        Filter("status", "status"),
        Filter("source", "source"),
    ),
    server_fields=("notified_at",),
    derived=("status",),
    derive=derive,
    never_deleted="an incident is never deleted: close it instead "
    '(PUT the incident with "ended_at" set to when the service recovered)',
)
