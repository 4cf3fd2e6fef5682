"""The OpenAPI document, generated from the app (and committed as openapi.yaml)."""

from __future__ import annotations

import yaml

from cdb_service.app import create_app
from cdb_service.settings import Settings


def render() -> str:
    app = create_app(Settings(database_url="sqlite:///:memory:"))
    schema = app.openapi_schema.to_schema()
    return yaml.safe_dump(schema, sort_keys=True, allow_unicode=True, width=100)
