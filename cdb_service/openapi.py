"""The contract's documents, generated from the app: the OpenAPI document (committed as
openapi.yaml) and the XSD of the XML answers (committed as web/xsd/cdb.xsd)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from litestar import Litestar

from cdb_service.app import create_app
from cdb_service.settings import Settings
from cdb_service.web.docs import ProblemDetails
from cdb_service.web.xml_schema import xml_schema


def _app() -> Litestar:
    return create_app(Settings(database_url="sqlite:///:memory:"))


def render() -> str:
    schema = _app().openapi_schema.to_schema()
    return yaml.safe_dump(schema, sort_keys=True, allow_unicode=True, width=100)


def render_xsd() -> bytes:
    return xml_schema(_app(), ProblemDetails)


if __name__ == "__main__":  # `make openapi`: python -m cdb_service.openapi PATH
    Path(sys.argv[1]).write_bytes(render_xsd())
