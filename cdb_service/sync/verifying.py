"""A fetched package, checked before anything of it is applied: the registry's signature
and every file's digest (`distribution.package_check.verify_package`, as
`cdb-service verify-package` does), then that it is this party's package and the one the
registry named (`CDB-Package-Digest`)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import Any

from cdb_service.distribution.package_check import verify_package
from cdb_service.sync.config import AgentConfig
from cdb_service.sync.registry_api import Fetched
from cdb_service.sync.target import VerifiedPackage


class PackageRefused(Exception):
    """A package that does not verify: `file` is the member at fault (or None)."""

    def __init__(self, file: str | None, detail: str) -> None:
        super().__init__(f"package refused: {file or 'the archive'}: {detail}")
        self.file, self.detail = file, detail


def verified(fetched: Fetched, keys: Any, config: AgentConfig) -> VerifiedPackage:
    verdict = verify_package(fetched.body, keys)
    if not verdict.ok or verdict.manifest is None:
        raise PackageRefused(verdict.file, verdict.detail)
    manifest = verdict.manifest
    if manifest.get("party") != config.party:
        raise PackageRefused("manifest.json", f"it is party {manifest.get('party')!r}'s package, "
                             f"not {config.party!r}'s")  # fmt: skip
    digest = manifest.get("package_digest")
    if not isinstance(digest, str) or (fetched.digest and fetched.digest != digest):
        raise PackageRefused("manifest.json", "its package_digest is not the one the registry "
                             "named (CDB-Package-Digest)")  # fmt: skip
    try:
        effective = manifest.get("effective_from")
        effective_from = dt.datetime.fromisoformat(effective) if effective else None
        if effective_from is not None and effective_from.tzinfo is None:
            effective_from = effective_from.replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        raise PackageRefused("manifest.json", "its effective_from is not a date-time") from None
    with zipfile.ZipFile(io.BytesIO(fetched.body)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return VerifiedPackage(
        party=config.party, owner=str(manifest.get("owner", "")), digest=digest,
        effective_from=effective_from, files=files, manifest=manifest,
        store_password=config.store_password,
    )  # fmt: skip
