"""Routing-party actions beyond the generic ones: rotating a certificate everywhere at once."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency
from pydantic import BaseModel, Field, ValidationError

from cdb_service.kernel.problems import invalid
from cdb_service.registry.routing_parties.schemas import Certificate
from cdb_service.registry.service import field_errors
from cdb_service.runtime import Runtime
from cdb_service.security.policy import Principal
from cdb_service.web.docs import problems


class CertificateRotation(BaseModel):
    replaces_sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="SHA-256 fingerprint of the certificate to replace",
    )
    pem: str = Field(description="the renewed certificate (PEM)")


class RoutingPartyActions(Controller):
    path = "/routing-parties"
    tags = ["routing-parties"]  # noqa: RUF012

    @post(
        "/certificate-rotation",
        status_code=200,
        summary="Replace a certificate wherever it is used, as one revision",
        responses=problems(400, 404, 422),
    )
    async def rotate(
        self, data: CertificateRotation, request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
    ) -> dict[str, Any]:  # fmt: skip
        principal = request.user
        assert isinstance(principal, Principal)
        try:
            renewed = Certificate.model_validate({"use": "signing", "pem": data.pem})
        except ValidationError as error:
            raise invalid(field_errors(error)) from None
        client = request.client.host if request.client else None
        result = await runtime.registry.rotate_certificate(
            data.replaces_sha256.lower(),
            renewed.pem,
            principal,
            principal.who(request.scope["state"].get("request_id"), client),
        )
        return result
