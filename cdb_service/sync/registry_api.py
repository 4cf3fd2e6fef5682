"""The agent's calls to the registry: its JWKS, the current and next packages (with
If-None-Match), and acknowledgements. Over the one outbound client: mutual TLS with the
configured identity and a bearer token (from the issuer, renewed; or a file)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from joserfc.jwk import KeySet

from cdb_service import outbound
from cdb_service.distribution.package_check import MAX_MEMBER
from cdb_service.mistakes import UserMistake
from cdb_service.sync.config import AgentConfig

MAX_PACKAGE = 4 * MAX_MEMBER  # far above any package; a broken or hostile answer stops here
V1 = "/api/v1"


class RegistryUnavailable(Exception):
    """The registry did not answer, or answered 5xx / 429: try again later."""


class RegistryRefused(UserMistake):
    """The registry refused this agent's request (401, 403, 404: wrong party, credentials
    or rights): a person must fix the configuration."""


class AcknowledgementFailed(Exception):
    """The registry did not record an acknowledgement; it is sent again later. `final`:
    the registry refused this body as such (400, 413, 415, 422), so it would be refused
    again."""

    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


@dataclass(frozen=True)
class Fetched:
    digest: str
    body: bytes


NOT_MODIFIED = Fetched("", b"")  # the package named by If-None-Match is still the one


class RegistryApi:
    def __init__(self, config: AgentConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        timeout = httpx.Timeout(60, connect=10)
        if transport is None:
            self.http = outbound.client(config.registry, config.tls, config.credentials,
                                        timeout=timeout)  # fmt: skip
        else:  # tests: a transport instead of the network
            self.http = httpx.Client(base_url=config.registry, auth=config.credentials,
                                     timeout=timeout, transport=transport)  # fmt: skip

    def close(self) -> None:
        self.http.close()

    def key_set(self) -> KeySet:
        """The JWKS that packages must be signed with: a file (pinned by the operator) or
        a URL, fetched over this mutual-TLS client."""
        where = self.config.jwks
        if where.startswith(("https://", "http://")):
            try:
                response = self.http.get(where)
            except httpx.HTTPError as error:
                raise RegistryUnavailable(f"cannot fetch the JWKS {where}: {error!r}") from error
            _check(response, f"the JWKS {where}")
            data = response.json()
        else:
            try:
                data = json.loads(Path(where).read_text(encoding="utf-8"))
            except OSError as error:
                raise UserMistake(f"cannot read the JWKS file {where}: {error.strerror}") from None
            except ValueError as error:
                raise UserMistake(f"the JWKS file {where} is not JSON ({error})") from None
        try:
            return KeySet.import_key_set(data)
        except (ValueError, TypeError, KeyError) as error:
            raise UserMistake(f"{where} is not a JWKS ({error})") from None

    def package(self, *, ahead: bool, known: str | None) -> Fetched | None:
        """The current package (or, `ahead`, the next one): NOT_MODIFIED when it is still
        `known`'s; None when there is no next one (404 on /next)."""
        path = f"{V1}/packages/{quote(self.config.party, safe='')}" + ("/next" if ahead else "")
        params = {"store_password": self.config.store_password} | self.config.scope.params()
        headers = {"If-None-Match": f'W/"{known}"'} if known else {}
        what = "the next package" if ahead else "the package"
        try:
            with self.http.stream("GET", path, params=params, headers=headers) as response:
                if response.status_code == 304:
                    return NOT_MODIFIED
                if response.status_code == 404 and ahead and _is_problem(response):
                    return None
                _check(response, f"{what} of {self.config.party!r}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_PACKAGE:
                        raise RegistryUnavailable(f"{what} is larger than {MAX_PACKAGE} bytes")
                digest = response.headers.get("CDB-Package-Digest", "")
        except httpx.HTTPError as error:
            raise RegistryUnavailable(f"cannot fetch {what}: {error!r}") from error
        return Fetched(digest, bytes(body))

    def acknowledge(self, digest: str, kind: str, name: str, applied_at: dt.datetime | str,
                    answer: Any, scheduled_for: dt.datetime | None = None) -> None:  # fmt: skip
        """Applied; or, `scheduled_for`, verified and held (since `applied_at`) to be
        applied then."""
        when = applied_at if isinstance(applied_at, str) else applied_at.isoformat()
        body = {"package_digest": digest, "target": {"kind": kind, "name": name},
                "applied_at": when, "answer": answer}  # fmt: skip
        if scheduled_for is not None:
            body["scheduled_for"] = scheduled_for.isoformat()
        path = f"{V1}/access-points/{quote(self.config.party, safe='')}/acknowledgements"
        try:
            response = self.http.post(path, json=body)
        except httpx.HTTPError as error:
            raise AcknowledgementFailed(f"cannot reach the registry: {error!r}") from error
        status = response.status_code
        if status not in (200, 201):
            raise AcknowledgementFailed(f"the registry answered {status}: {_detail(response)}",
                                        final=status in (400, 413, 415, 422))  # fmt: skip


def _is_problem(response: httpx.Response) -> bool:
    """A 404 from the registry itself (a problem document), not from a proxy in front."""
    return str(response.headers.get("content-type", "")).startswith("application/problem+json")


def _detail(response: httpx.Response) -> str:
    try:
        response.read()
        document = response.json()
        return str(document.get("detail") or document.get("title"))[:300]
    except (ValueError, AttributeError, httpx.HTTPError):
        return response.reason_phrase


def _check(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in (401, 403, 404, 422):
        raise RegistryRefused(f"the registry refused {what}: {status} {_detail(response)}")
    raise RegistryUnavailable(f"the registry answered {status} for {what}")
