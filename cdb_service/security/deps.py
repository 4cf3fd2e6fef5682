"""The caller as handlers see it: the principal the gate authenticated, and who for audit."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope

from cdb_service.security.audit import Who
from cdb_service.security.consultations import ConsultationLog, Viewer
from cdb_service.security.dev import DevPki
from cdb_service.security.gate import SecurityGate, who_of
from cdb_service.security.policy import Principal
from cdb_service.security.receipts import Receipts
from cdb_service.web.deps import part, state_of


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    """The authenticated caller; every route under /api has passed the gate."""
    principal = request.user
    if not isinstance(principal, Principal):  # a route mounted outside the gate by mistake
        raise RuntimeError("no authenticated principal on an API route")
    return principal


def who_of_request(request: Request[Any, Any, Any]) -> Who:
    """Who acts, for the audit trail: the same description the gate's refusals use."""
    principal_of(request)  # an API route: the caller is authenticated
    return who_of(request.scope)


def provide_consultations(state: State) -> ConsultationLog:
    return part(state, "consultations", ConsultationLog)


def consultations_of(scope: Scope) -> ConsultationLog:
    """For the console's pages, which find who reads outside DI (`console.web.viewer`)."""
    return provide_consultations(state_of(scope))


def viewer_of(request: Request[Any, Any, Any]) -> Viewer:
    """Who reads, as every read shows them entries: named persons redacted, or their
    reading recorded (`security.consultations`)."""
    return Viewer(principal_of(request), who_of_request(request),
                  consultations_of(request.scope))  # fmt: skip


def provide_gate(state: State) -> SecurityGate:
    return part(state, "gate", SecurityGate)


def gate_of(scope: Scope) -> SecurityGate:
    """For the middleware that runs before DI: the gate itself, the request ids'
    trust in a proxy's id (`app.py` hands it to each)."""
    return provide_gate(state_of(scope))


def from_proxy(scope: Scope) -> bool:
    """Whether this request came through a configured reverse proxy (`web.request_id`
    believes the proxy's request id then)."""
    return gate_of(scope).from_proxy(scope)


def provide_receipts(state: State) -> Receipts:
    return part(state, "receipts", Receipts)


def receipts_of(scope: Scope) -> Receipts:
    """For the receipt middleware, which signs answers after DI is done with them."""
    return provide_receipts(state_of(scope))


def provide_dev_pki(state: State) -> DevPki:
    """Only the dev issuer asks for it, and it is mounted only when the dev PKI exists."""
    return part(state, "dev_pki", DevPki)


DEPENDENCIES = {
    "principal": Provide(principal_of, sync_to_thread=False),
    "who": Provide(who_of_request, sync_to_thread=False),
    "viewer": Provide(viewer_of, sync_to_thread=False),
    "consultations": Provide(provide_consultations, sync_to_thread=False),
    "gate": Provide(provide_gate, sync_to_thread=False),
    "dev_pki": Provide(provide_dev_pki, sync_to_thread=False),
}
