"""The kinds of target the agent knows, by the name a `[[targets]]` table gives as `kind`
(the registry's words: `distribution.acknowledgements.TARGET_KINDS`).

A kind is one line in `TARGET_KINDS`: its name and the factory that makes a target from
the table's name and settings (raising `UserMistake` for a wrong setting). The settings
of the HTTP targets:

    [[targets]]                       [[targets]]
    kind = "domibus"                  kind = "connector-ng"
    name = "gw-1"                     name = "ng-1"
    base_url = "https://gw/domibus"   base_url = "https://connector.example"
    username = "cdb-sync"             username = "cdb-sync"
    password_file = "…"               password_file = "…"
    truststore_api = true  # 5.1+     business_domain = "lane-1"
    ca = "…"  (optional)              ca = "…"  (optional)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdb_service.mistakes import UserMistake
from cdb_service.sync import connector_ng, directory, domibus
from cdb_service.sync.config import Reader, TargetFactory
from cdb_service.sync.target import Target

HTTP_SETTINGS = {"base_url", "username", "password", "password_file", "ca", "timeout_seconds",
                 "store_type", "description"}  # fmt: skip


def _reader(settings: Mapping[str, Any]) -> Reader:
    return settings if isinstance(settings, Reader) else Reader(Path("config"), settings)


def _http(reader: Reader) -> dict[str, Any]:
    """The settings every HTTP target shares, as its constructor's keywords."""
    base_url = reader.text("base_url").rstrip("/")
    if not base_url.startswith(("https://", "http://")):
        raise reader.mistake("base_url", "must be an https:// URL")
    given = reader.table.get("password") is not None
    if given == (reader.table.get("password_file") is not None):
        raise reader.mistake("password_file", "or password: give one of them")
    if given:
        password = reader.text("password")
    else:
        file = reader.path("password_file")
        try:
            password = file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise reader.mistake("password_file", f"cannot be read ({error.strerror})") from None
    ca = reader.optional_path("ca")
    if ca is not None and not ca.is_file():
        raise reader.mistake("ca", f"names no readable file: {ca}")
    made = {"base_url": base_url, "username": reader.text("username"), "password": password,
            "ca": ca, "timeout_s": reader.seconds("timeout_seconds", 30.0, 1.0),
            "store_type": reader.text("store_type", "JKS").upper()}  # fmt: skip
    if reader.table.get("description") is not None:
        made["description"] = reader.text("description")
    return made


def _made(reader: Reader, make: Any, **keywords: Any) -> Target:
    try:
        target: Target = make(**keywords)
    except ValueError as error:  # the target's own checks (store_type, description)
        raise UserMistake(f"{reader.file}: {reader.where.rstrip('.')}: {error}") from None
    return target


def domibus_target(name: str, settings: Mapping[str, Any]) -> Target:
    reader = _reader(settings)
    reader.unknown(HTTP_SETTINGS | {"truststore_api"})
    return _made(reader, domibus.DomibusTarget, name=name, **_http(reader),
                 truststore_api=reader.flag("truststore_api"))  # fmt: skip


def connector_ng_target(name: str, settings: Mapping[str, Any]) -> Target:
    reader = _reader(settings)
    reader.unknown(HTTP_SETTINGS | {"business_domain"})
    return _made(reader, connector_ng.ConnectorNgTarget, name=name, **_http(reader),
                 business_domain=reader.text("business_domain"))  # fmt: skip


TARGET_KINDS: dict[str, TargetFactory] = {
    directory.KIND: directory.from_settings,
    domibus.KIND: domibus_target,
    connector_ng.KIND: connector_ng_target,
}
