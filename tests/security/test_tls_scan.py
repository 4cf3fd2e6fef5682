"""An sslyze-like scan, with Python's `ssl`, of a real `cdb-service serve` (dev, direct TLS).

Old protocols are refused, TLS 1.2 and 1.3 are spoken, the TLS 1.2 suites the server
accepts are a subset of Mozilla "intermediate", there is no TLS compression, and the
chain presented validates against the dev CA for `localhost`.

Refusal tests must be able to fail: each old-protocol row first proves, against a tiny
permissive `ssl` server in this module (same dev key and certificate), that its client
context really completes such a handshake; the cipher probe likewise proves it detects a
non-intermediate suite. Where the local OpenSSL cannot speak a protocol at all, the row
is skipped with the reason, never passed.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cdb_service.security.dev import DevPki
from cdb_service.security.tls import INTERMEDIATE_CIPHERS
from tests.support.nginx import running_nginx
from tests.support.service_process import executable
from tests.support.tls import client_context

HOST = "127.0.0.1"
INTERMEDIATE_TLS12 = frozenset(INTERMEDIATE_CIPHERS.split(":"))
ECDSA_GCM = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"}
# The TLS 1.3 suites OpenSSL offers by default, all allowed by the intermediate profile.
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


# --- the service under scan ---------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    port: int
    pki: Path

    @property
    def ca(self) -> Path:
        return self.pki / "ca.pem"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("tls-scan")
    data_dir, port = root / "var", _free_port()
    env = os.environ | {
        "CDB_DATA_DIR": str(data_dir),
        "CDB_PORT": str(port),
        "CDB_HOST": HOST,  # loopback only
        "CDB_PROFILE": "dev",
        "CDB_AUTO_SEED": "false",  # the scan needs TLS, not registry data; starts faster
    }
    env.pop("CDB_DATABASE_URL", None)
    exe = executable()
    log = root / "serve.log"
    process = subprocess.Popen(
        [exe, "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    pki = data_dir / "pki"
    try:
        _wait_ready(port, process, pki / "ca.pem", log)
        yield Service(port, pki)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(port: int, process: subprocess.Popen[bytes], ca: Path, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the service exited:\n{log.read_text()[-3000:]}"
        if ca.exists():  # the service writes its dev PKI first
            try:
                response = httpx.get(
                    f"https://localhost:{port}/health/ready", timeout=2, verify=client_context(ca)
                )
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    raise AssertionError("the service was not ready in time")


# --- handshakes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Handshake:
    version: str | None
    cipher: str | None
    compression: str | None


def _handshake(port: int, context: ssl.SSLContext, hostname: str = "localhost") -> Handshake:
    """Connect, complete a handshake (or raise `ssl.SSLError`/`OSError`), close."""
    with (
        socket.create_connection((HOST, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        cipher = tls.cipher()
        return Handshake(tls.version(), cipher[0] if cipher else None, tls.compression())


def _scan_context(version: ssl.TLSVersion, ciphers: str = "ALL:@SECLEVEL=0") -> ssl.SSLContext:
    """A client pinned to exactly `version`, willing to use anything (no verification)."""
    with warnings.catch_warnings():  # ssl deprecates TLS 1.0/1.1 constants; we mean them
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers(ciphers)
        context.minimum_version = version
        context.maximum_version = version
    # Offer compression, should this OpenSSL have it, so that the server could pick it.
    context.options &= ~ssl.OP_NO_COMPRESSION
    return context


class PermissiveServer:
    """A tiny local `ssl` server that accepts exactly `version`: the control for a scan."""

    def __init__(self, cert: Path, key: Path, version: ssl.TLSVersion) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.set_ciphers("ALL:@SECLEVEL=0")
            self.context.minimum_version = version
            self.context.maximum_version = version
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except OSError:  # a refused handshake is the client's business
                conn.close()

    def __enter__(self) -> PermissiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()


# --- the scan -----------------------------------------------------------------------------

OLD_PROTOCOLS = [
    # The OpenSSL this runs on is normally built without SSLv3 (`ssl.HAS_SSLv3` is False):
    # a client cannot even offer it, so that row is skipped, not passed.
    pytest.param(ssl.TLSVersion.SSLv3, ssl.HAS_SSLv3, "SSLv3", id="SSLv3"),
    pytest.param(ssl.TLSVersion.TLSv1, ssl.HAS_TLSv1, "TLSv1", id="TLSv1.0"),
    pytest.param(ssl.TLSVersion.TLSv1_1, ssl.HAS_TLSv1_1, "TLSv1.1", id="TLSv1.1"),
]


@pytest.mark.parametrize(("version", "available", "name"), OLD_PROTOCOLS)
def test_old_protocols_are_refused(
    service: Service, version: ssl.TLSVersion, available: bool, name: str
) -> None:
    if not available:
        pytest.skip(f"this OpenSSL ({ssl.OPENSSL_VERSION}) cannot speak {name} at all")
    client = _scan_context(version)

    # Control: this very client context completes a handshake where the protocol is allowed.
    with PermissiveServer(service.pki / "server.pem", service.pki / "server-key.pem", version) as s:
        try:
            control = _handshake(s.port, client)
        except OSError as error:
            pytest.skip(f"this OpenSSL ({ssl.OPENSSL_VERSION}) cannot complete {name}: {error}")
    assert control.version == name

    with pytest.raises(ssl.SSLError) as refused:
        _handshake(service.port, client)
    # asyncio's SSL transport aborts a failed handshake without flushing OpenSSL's
    # protocol_version alert, so the client usually sees an EOF rather than the alert.
    assert refused.value.reason in {
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "WRONG_VERSION_NUMBER",
        "UNEXPECTED_EOF_WHILE_READING",
    }, refused.value
    # ... and the refusal was about the protocol: the server is up and speaks TLS 1.2.
    assert _handshake(service.port, _scan_context(ssl.TLSVersion.TLSv1_2)).version == "TLSv1.2"


@pytest.mark.parametrize(
    ("version", "name"),
    [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")],
    ids=["TLSv1.2", "TLSv1.3"],
)
def test_current_protocols_are_spoken_without_compression(
    service: Service, version: ssl.TLSVersion, name: str
) -> None:
    result = _handshake(service.port, _scan_context(version))
    assert result.version == name
    assert result.compression is None
    if version is ssl.TLSVersion.TLSv1_3:
        assert result.cipher in TLS13_SUITES


def _tls12_candidates() -> list[str]:
    """Every suite this OpenSSL knows that can be negotiated in TLS 1.2.

    OpenSSL labels a suite with the protocol that introduced it: the brief's
    `protocol == "TLSv1.2"` filter keeps the 86 TLS 1.2-only ones, but the ~70 labelled
    `SSLv3`/`TLSv1.0` (e.g. ECDHE-ECDSA-AES128-SHA) are just as negotiable in TLS 1.2,
    and sslyze tries them too. So: everything but the TLS 1.3 suites.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"]


def _accepted_tls12(port: int, candidates: list[str]) -> set[str]:
    accepted = set()
    for name in candidates:
        client = _scan_context(ssl.TLSVersion.TLSv1_2, f"{name}:@SECLEVEL=0")
        try:
            result = _handshake(port, client)
        except OSError:  # refused (or a suite the client cannot offer: PSK, SRP)
            continue
        assert result.version == "TLSv1.2" and result.cipher == name, result
        accepted.add(name)
    return accepted


def test_tls12_cipher_suites_are_mozilla_intermediate(service: Service) -> None:
    candidates = _tls12_candidates()
    assert set(candidates) >= INTERMEDIATE_TLS12, "this OpenSSL lacks an intermediate suite"

    # Control: the probe does notice a non-intermediate suite where a server allows it.
    cbc = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"]
    with PermissiveServer(
        service.pki / "server.pem", service.pki / "server-key.pem", ssl.TLSVersion.TLSv1_2
    ) as permissive:
        assert _accepted_tls12(permissive.port, cbc) == set(cbc)

    accepted = _accepted_tls12(service.port, candidates)
    print("accepted TLS 1.2 suites:", sorted(accepted))
    assert accepted <= INTERMEDIATE_TLS12, accepted - INTERMEDIATE_TLS12
    assert accepted >= ECDSA_GCM


def test_presented_chain_validates_against_the_dev_ca_for_localhost(service: Service) -> None:
    trusting = ssl.create_default_context(cafile=str(service.ca))
    assert trusting.check_hostname and trusting.verify_mode is ssl.CERT_REQUIRED
    result = _handshake(service.port, trusting, hostname="localhost")
    assert result.version in {"TLSv1.2", "TLSv1.3"}
    assert result.compression is None

    # Controls: the same chain does not validate without the dev CA, nor for another name.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(service.port, ssl.create_default_context(), hostname="localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(service.port, trusting, hostname="not-localhost.example")


@pytest.fixture(scope="module", params=["direct", "nginx"])
def scanned_port(request: pytest.FixtureRequest, service: Service,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:  # fmt: skip
    """The service's own TLS port, and the shipped nginx configuration's (deploy/nginx)
    with the same certificate: both are what a client meets."""
    if request.param == "direct":
        yield service.port
        return
    pki = DevPki(service.pki)
    root = tmp_path_factory.mktemp("tls-scan-nginx")
    with running_nginx(root, upstream=f"127.0.0.1:{service.port}", cert=pki.server_cert,
                       key=pki.server_key) as nginx:  # fmt: skip
        yield nginx.port


def test_sslyze_finds_mozilla_intermediate_compliant_but_for_the_private_ca(
    scanned_port: int,
) -> None:
    """sslyze (PyPI) scans the service as an outside auditor would and checks it against
    Mozilla's intermediate profile. The one finding allowed: the dev CA is nobody's
    trust store's, so the chain is "not trusted"."""
    from sslyze import Scanner, ServerNetworkLocation, ServerScanRequest
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    scanner = Scanner()
    scanner.queue_scans([ServerScanRequest(
        server_location=ServerNetworkLocation("localhost", scanned_port, ip_address=HOST),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    )])  # fmt: skip
    [result] = list(scanner.get_results())
    intermediate = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    try:
        check_server_against_tls_configuration(result, intermediate)
        issues: dict[str, str] = {}
    except ServerNotCompliantWithTlsConfiguration as error:
        issues = error.issues
    others = {name: text for name, text in issues.items() if name != "certificate_path_validation"}
    assert not others, others
    curves = result.scan_result.elliptic_curves.result  # type: ignore[union-attr]
    offered = {curve.name for curve in curves.supported_curves}
    assert offered <= {"X25519", "secp256r1", "secp384r1"}, offered  # prime256v1 is secp256r1
    # The leaf lives a year at most (the profile asks for 366 days or fewer).
    deployment = result.scan_result.certificate_info.result.certificate_deployments[0]  # type: ignore[union-attr]
    leaf = deployment.received_certificate_chain[0]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 365
