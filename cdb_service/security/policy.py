"""The one place that decides who may do what. Handlers ask; they never improvise.

Roles come from the token: reader (`cdb.read`), administrator of owner X
(`cdb.write` and the owner claim X), operator (`cdb.operator`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cdb_service.kernel import codes
from cdb_service.kernel.problems import FORBIDDEN, FieldError, Problem, malformed
from cdb_service.security.audit import Who
from cdb_service.security.certificates import ClientCertificate

READ, WRITE, OPERATE = "cdb.read", "cdb.write", "cdb.operator"


@dataclass(frozen=True)
class Principal:
    subject: str
    client_id: str | None
    scopes: frozenset[str]
    owner: str | None
    # None for a person signed in to the console without a client certificate.
    certificate: ClientCertificate | None
    # The name claim of a person signed in to the console, for the audit trail.
    person: str | None = None

    @property
    def client_key(self) -> str:
        """Whom per-client limits count: the certificate, or the signed-in person."""
        if self.certificate is not None:
            return self.certificate.facts.x5t_s256
        return f"person:{self.subject}"

    @property
    def is_operator(self) -> bool:
        return OPERATE in self.scopes

    @property
    def administers(self) -> str | None:
        """The owner this principal administers, if any."""
        return self.owner if WRITE in self.scopes and self.owner else None

    def who(self, request_id: str | None = None, source_ip: str | None = None,
            client_request_id: str | None = None) -> Who:  # fmt: skip
        facts = self.certificate.facts if self.certificate is not None else None
        return Who(
            subject=f"{self.subject} ({self.person})" if self.person else self.subject,
            client_id=self.client_id,
            cert_subject=facts.subject if facts else None,
            cert_thumbprint=facts.x5t_s256 if facts else None,
            request_id=request_id,
            source_ip=source_ip,
            client_request_id=client_request_id,
            operator=self.is_operator,
        )


def principal_from_claims(
    claims: dict[str, Any],
    certificate: ClientCertificate | None,
    owner_claim: str,
    scope_claim: str,
    person: str | None = None,
) -> Principal:
    raw = claims.get(scope_claim, "")
    # A string (RFC 8693 style) or a list of strings; anything else grants nothing.
    if isinstance(raw, str):
        scopes = frozenset(raw.split())
    elif isinstance(raw, list):
        scopes = frozenset(item for item in raw if isinstance(item, str))
    else:
        scopes = frozenset()
    owner = claims.get(owner_claim)
    return Principal(
        subject=str(claims.get("sub") or claims.get("client_id") or "unknown"),
        client_id=str(claims["client_id"]) if claims.get("client_id") else None,
        scopes=scopes,
        owner=codes.code_of(str(owner)) if owner else None,
        certificate=certificate,
        person=person,
    )


def forbidden(detail: str) -> Problem:
    return FORBIDDEN(detail, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})


def owner_acted_for(principal: Principal, requested: str | None) -> str:
    """Whose entries an import, an export or a quality report is about: the owner asked
    for, else the one the caller administers; an operator (who administers none) names
    one. Whether the caller may act for it is a separate question (`require_write`)."""
    owner = codes.code_of(requested or principal.administers or "")
    if not owner:
        raise malformed(
            "name the batch's owner (?owner=XX)", FieldError(("query", "owner"), "is required")
        )
    return owner


def may_read(principal: Principal) -> bool:
    return bool(principal.scopes & {READ, WRITE, OPERATE})


def may_write(principal: Principal, owner: str) -> bool:
    """Operators write any owner's entries; an administrator its own owner's (a member
    state, EJ, or a registered third country: whatever owner claim its token carries).
    The Commission's entries (central components, the list of owners and what each takes
    part in) are operators' alone: no administrator holds EC."""
    if principal.is_operator:
        return True
    return owner != codes.COMMISSION and principal.administers == owner


def sees_named_persons(principal: Principal) -> bool:
    """Annex I 5.5: named persons only for administrators and operators."""
    return principal.is_operator or principal.administers is not None


def redact(document: dict[str, Any], private_fields: Iterable[str]) -> dict[str, Any]:
    """A document without a kind's private fields (named persons, Annex I 5.5): what a
    reader sees, and every answer that is the same for every caller (resolve).

    Whether a caller may see them is asked by `security.consultations.Viewer`, the one
    way a read shows them, which records each such read (Annex I 5.1(d))."""
    hidden = set(private_fields)
    if not hidden:
        return document
    return {k: v for k, v in document.items() if k not in hidden}


def _holds(principal: Principal) -> str:
    scopes = " ".join(sorted(principal.scopes)) or "no scope"
    return f"the token of {principal.subject[:80]!r} has {scopes}"


def require_operator(principal: Principal, what: str) -> None:
    """For routes only operators use: `what` says whose they are, in the refusal."""
    if not principal.is_operator:
        raise forbidden(f"{what} (scope cdb.operator)")


def require_read(principal: Principal) -> None:
    if not may_read(principal):
        raise forbidden(f"reading the registry needs the scope {READ}; {_holds(principal)}")


def require_writer(principal: Principal) -> None:
    """May `principal` change anything at all? Asked before a request body is read."""
    if WRITE not in principal.scopes and not principal.is_operator:
        raise forbidden(
            f"changing the registry needs the scope {WRITE} and an owner claim; "
            f"{_holds(principal)} (a reader may only read)"
        )


def require_write(principal: Principal, owner: str, current_owner: str | None = None) -> None:
    """May `principal` write an entry of `owner` (that is now of `current_owner`)?"""
    require_writer(principal)
    for target in {owner, current_owner} - {None}:
        if not may_write(principal, str(target)):
            mine = principal.administers or "no owner"
            raise forbidden(f"an administrator of {mine} cannot change entries of {target}")


def may_acknowledge(principal: Principal, owner: str, party_certificates: Iterable[str]) -> bool:
    """May `principal` say what an access point (a routing party of `owner`) runs?

    Its owner's administrators, and the access point itself: a client whose certificate
    (the one it presented for mutual TLS) is one of the party's certificates, with a
    token that may read. Operators may not, unless they are one of those: an
    acknowledgement is the access point's word about itself, and one made for it would
    show a rollout confirmed that no access point has applied."""
    if owner != codes.COMMISSION and principal.administers == owner:
        return True
    mine = principal.certificate.facts.sha256 if principal.certificate is not None else None
    return may_read(principal) and mine is not None and mine in set(party_certificates)


def may_read_acknowledgements(
    principal: Principal, owner: str, party_certificates: Iterable[str]
) -> bool:
    """May `principal` read what an access point (a routing party of `owner`) says it runs?

    Those who may say it (`may_acknowledge`: its owner's administrators, the access point
    itself), and operators, who watch every rollout (`GET /rollouts` shows them these
    acknowledgements' digests already); another owner's administrators may not."""
    return principal.is_operator or may_acknowledge(principal, owner, party_certificates)
