"""Routing-party actions beyond the generic ones: rotating a certificate everywhere at once."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Response, post
from litestar.di import NamedDependency
from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.kernel.problems import invalid
from cdb_service.registry.http.answers import CertificateRotated
from cdb_service.registry.kinds.routing_parties.schemas import Certificate
from cdb_service.registry.store.certificate_rotation import rotate_certificate
from cdb_service.registry.store.validation import field_errors
from cdb_service.security import policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.web.consistency import REVISION_HEADER
from cdb_service.web.docs import answer, problems

# What openssl prints (`sha256 Fingerprint=AB:CD:…`), what browsers show (`AB CD …` or
# `AB:CD:…`) and bare hex, in either case.
_LABEL = re.compile(r"^\s*(?:sha-?256\s*)?(?:fingerprint\s*)?[=:]?\s*", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s:]+")


def fingerprint(value: object) -> object:
    """A SHA-256 fingerprint as the registry keeps it: 64 lowercase hex digits."""
    if not isinstance(value, str):
        return value
    bare = _SEPARATORS.sub("", _LABEL.sub("", value, count=1))
    return bare.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", bare) else value


class CertificateRotation(BaseModel):
    replaces_sha256: Annotated[str, BeforeValidator(fingerprint)] = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 fingerprint of the certificate to replace: 64 hex digits, in "
        "either case, bare or in pairs separated by colons or spaces as openssl and browsers "
        "print it (`AB:CD:…`); openssl's `sha256 Fingerprint=` prefix may stay",
    )
    pem: str = Field(description="the renewed certificate (PEM)")


class RoutingPartyActions(Controller):
    path = "/routing-parties"
    tags = ["routing-parties"]  # noqa: RUF012

    @post(
        "/certificate-rotation",
        status_code=200,
        summary="Replace a certificate wherever it is used, as one revision",
        responses=problems(400, 404, 409, 413, 422) | answer(CertificateRotated),
    )
    async def rotate(
        self,
        data: CertificateRotation,
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        principal: NamedDependency[Principal],
        who: NamedDependency[Who],
    ) -> Response[dict[str, Any]]:
        try:
            renewed = Certificate.model_validate({"use": "signing", "pem": data.pem})
        except ValidationError as error:
            raise invalid(field_errors(error)) from None
        rotated = await rotate_certificate(
            sessions, data.replaces_sha256, renewed.pem, who,
            authorize=lambda owner: policy.require_write(principal, owner),
        )  # fmt: skip
        return Response(rotated, headers={REVISION_HEADER: str(rotated["revision"])})
