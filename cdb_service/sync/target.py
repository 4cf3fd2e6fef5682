"""What every target of the agent is: something a verified package is applied to.

Each kind of target (`connector4-dir`, `domibus`, `connector-ng`: the names the registry's
acknowledgements use, `distribution/acknowledgements.TARGET_KINDS`) implements `Target`.
The agent calls `apply` once per package and target; an `apply` that raises
`TargetFailed` is retried later with backoff and never acknowledged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class TargetFailed(Exception):
    """The target did not take the package. `transient` failures (a timeout, a 5xx, a
    refused connection) are retried; the others (a wrong password, a 4xx that names the
    package) are retried too, but reported as needing a person."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class VerifiedPackage:
    """A configuration package whose manifest signature and file digests have been checked.

    `files` maps each member of the ZIP (`pmode.xml`, `truststore.jks`, `truststore.p12`,
    `connectorstore.jks`, `connectorstore.p12` (absent when the store is empty),
    `manifest.json`, `manifest.jws`) to its
    bytes; `digest` is the package's content digest (`CDB-Package-Digest`, the ETag), the
    one an acknowledgement names; `store_password` opens the JKS and PKCS#12 stores.
    """

    party: str
    owner: str
    digest: str
    effective_from: dt.datetime | None  # None: in effect since the registry began
    files: Mapping[str, bytes]
    manifest: Mapping[str, Any]
    store_password: str


class Target(Protocol):
    kind: str  # one of distribution.acknowledgements.TARGET_KINDS
    name: str  # the operator's name for this target, unique within one agent

    def apply(self, package: VerifiedPackage) -> Mapping[str, Any]:
        """Apply `package`; return the target's own answer (JSON-able, small: it is sent
        to the registry in the acknowledgement). Raise `TargetFailed` if not applied."""
        ...
