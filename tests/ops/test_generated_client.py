"""The committed openapi.yaml is a contract a client can be generated from and used.

openapi-python-client (PyPI) generates a package from openapi.yaml into a temporary
directory; it must compile, and its typed functions must work against a real
`cdb-service serve` (dev profile, seeded) over mutual TLS with real bound tokens:
resolve a recipient (its country, instrument and competence required, each an enum of
its code list), list a page, create, patch (Merge Patch with If-Match) and read an entry.
Typed models are what the generator made of our schemas, so `names` arrives as a
mapping keyed by language and the entry as `AuthoritiesEntry`.

Credentials come from the security schemes alone: the generator makes every `/api`
operation take its `AuthenticatedClient` (bearer token; the client certificate in its
TLS context) because the operation names the schemes, and a public one (health, JWKS)
the plain `Client`, which gets a 401 from the API without a token.
"""

from __future__ import annotations

import compileall
import enum
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdb_service.kernel import codes
from tests.support.service_process import Service, executable, running_service
from tests.support.tls import client_context

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "cdb_generated_client"
CONFIG = f"""
project_name_override: {PACKAGE}
package_name_override: {PACKAGE}
content_type_overrides:
  application/x-ndjson: application/octet-stream
  application/xml: application/octet-stream
"""


def _generate(root: Path) -> Path:
    config = root / "config.yaml"
    config.write_text(CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(REPO / "openapi.yaml"), "--meta", "none",
         "--output-path", str(root / PACKAGE), "--config", str(config)],
        capture_output=True, text=True, cwd=root, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert compileall.compile_dir(root / PACKAGE, quiet=1), "the generated client does not compile"
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("generated-client")
    data = root / "var"
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(data), "CDB_RATE_LIMITS": "false"}
    subprocess.run([executable(), "dev-token", "--client", "reader"], env=env, check=True,
                   capture_output=True)  # the dev PKI, before the service trusts it  # fmt: skip
    with running_service(root, {"CDB_RATE_LIMITS": "false"}, ca=data / "pki" / "ca.pem") as service:
        yield service


def _client(module: Any, service: Service, who: str) -> Any:
    pki = service.data_dir / "pki"
    tls = client_context(pki / "ca.pem", pki / f"client-{who}.pem", pki / f"client-{who}-key.pem")
    return module.AuthenticatedClient(base_url=service.base_url, token=service.dev_token(who),
                                      verify_ssl=tls, raise_on_unexpected_status=True)  # fmt: skip


def _api(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def _client_type(module: Any) -> Any:
    return inspect.signature(module.sync_detailed).parameters["client"].annotation


def _operations() -> dict[str, Any]:
    """Every generated operation's module, by name (`api_v1_…` for the /api/v1 paths)."""
    package = importlib.import_module(f"{PACKAGE}.api")
    found = {}
    for info in pkgutil.walk_packages(package.__path__, f"{PACKAGE}.api."):
        module = importlib.import_module(info.name)
        if hasattr(module, "sync_detailed"):
            found[info.name.rsplit(".", 1)[-1]] = module
    return found


def _required_enums(function: Any, names: tuple[str, ...]) -> dict[str, type[enum.Enum]]:
    """The enum class of each named parameter, which must have no default (required)."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    found: dict[str, type[enum.Enum]] = {}
    for name in names:
        assert signature.parameters[name].default is inspect.Parameter.empty, f"{name} optional"
        kind = hints[name]
        assert isinstance(kind, type) and issubclass(kind, enum.Enum), f"{name}: {kind}"
        found[name] = kind
    return found


def test_a_generated_client_resolves_lists_creates_patches_and_reads(
    served: Service, tmp_path: Path
) -> None:
    sys.path.insert(0, str(_generate(tmp_path)))
    try:
        client_module = importlib.import_module(PACKAGE)
        models = importlib.import_module(f"{PACKAGE}.models")
        from_package = importlib.import_module(f"{PACKAGE}.api")
        assert from_package  # every operation's module imported without error above
        reader = _client(client_module, served, "reader")
        admin = _client(client_module, served, "admin-de")

        # Which operations need credentials, as the generator read it from the schemes.
        operations = _operations()
        secured = {n for n, m in operations.items() if _client_type(m) is type(reader)}
        assert secured == {n for n in operations if n.startswith("api_v1_")}, secured
        assert "well_known_jwks_json_jwks" in operations and "health_live_live" in operations
        pki = served.data_dir / "pki"
        plain = client_module.Client(base_url=served.base_url, verify_ssl=client_context(
            pki / "ca.pem", pki / "client-reader.pem", pki / "client-reader-key.pem"))  # fmt: skip
        keys = operations["well_known_jwks_json_jwks"].sync(client=plain)
        assert isinstance(keys, models.Jwks) and keys.keys
        untokened = operations["api_v1_code_lists_names"].sync_detailed(client=plain)
        assert untokened.status_code == 401, untokened.content
        assert isinstance(untokened.parsed, models.ProblemDetails)

        # A page, typed: the seeded German authorities.
        listing = _api("authorities.api_v1_authorities_collection")
        page = listing.sync(client=reader, owner="DE", limit=5)
        assert isinstance(page, models.AuthoritiesPage) and len(page.items) == 5
        first = page.items[0]
        assert first.names.additional_properties, "names is a mapping keyed by language"
        assert isinstance(page.next_, str)

        # Resolve a recipient, both ways: by its code, and by the place a criterion names.
        recipient = _api("resolve.api_v1_resolve_recipient_code_recipient").sync(
            first.code, client=reader
        )
        assert isinstance(recipient, models.Recipient)
        assert recipient.authority.code == first.code
        criteria = _api("jurisdiction_criteria.api_v1_jurisdiction_criteria_collection").sync(
            client=reader, owner="DE", limit=50
        )
        criterion = next(c for c in criteria.items if c.geo[0].scheme in ("country", "nuts1"))
        place = criterion.geo[0]
        query: dict[str, Any] = {"nuts": place.code} if place.scheme == "nuts1" else {}
        resolve = _api("resolve.api_v1_resolve_resolve")
        # The code lists are the contract's: country, instrument and competence are
        # required, each an enum of its code list's values.
        kinds = _required_enums(resolve.sync, ("country", "instrument", "competence"))
        assert {member.value for member in kinds["country"]} == set(codes.COUNTRIES)
        assert {member.value for member in kinds["instrument"]} == set(codes.INSTRUMENTS)
        assert {member.value for member in kinds["competence"]} == set(codes.COMPETENCES)
        resolved = resolve.sync(
            client=reader, country=kinds["country"]("DE"),
            instrument=kinds["instrument"](criterion.instrument),
            competence=kinds["competence"](criterion.competence), **query,
        )  # fmt: skip
        assert isinstance(resolved, models.Resolution)
        assert resolved.matches or resolved.explanation, resolved

        # Create, patch (Merge Patch with If-Match), read.
        names = models.AuthorityInNames.from_dict({"de": "Generiertes Gericht"})
        body = models.AuthorityIn(owner="DE", code="DE:GENERATED-1", kind="court", names=names)
        created = _api("authorities.api_v1_authorities_create").sync_detailed(
            client=admin, body=body
        )
        assert created.status_code == 201, created.content
        entry = created.parsed
        assert isinstance(entry, models.AuthoritiesEntry) and entry.version == 1
        change = models.ApiV1AuthoritiesEntryIdChangeBody.from_dict(
            {"names": {"de": "Generiertes Gericht", "en": "Generated court"}}
        )
        patched = _api("authorities.api_v1_authorities_entry_id_change").sync_detailed(
            entry.id, client=admin, body=change, if_match=created.headers["etag"]
        )
        assert patched.status_code == 200, patched.content
        assert patched.parsed.version == 2
        read = _api("authorities.api_v1_authorities_entry_id_one").sync(entry.id, client=reader)
        assert isinstance(read, models.AuthoritiesEntry)
        assert read.names.additional_properties == {
            "de": "Generiertes Gericht", "en": "Generated court"
        }  # fmt: skip
        assert read.version == 2 and read.code == "DE:GENERATED-1"
        for client in (reader, admin, plain):  # no idle keep-alive for the server to wait on
            client.get_httpx_client().close()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]
