"""Server-side TLS: Mozilla "intermediate" choices, and the peer certificate handed to the app.

uvicorn does not fill the ASGI `tls` extension; `PeerCertificateProtocol` (a thin
subclass of a uvicorn protocol, which is why uvicorn is pinned below 1.0)
reads the verified peer certificate once per connection from the SSL object and
adds it to every request scope of that connection as `client_cert_chain`. It
builds on uvicorn's httptools protocol (the fast parser; httptools is a dependency),
through `connection.GuardedProtocol`, which bounds what a connection may cost.

Key exchange groups: X25519, P-256 and P-384, as Mozilla's intermediate profile and
the shipped nginx (`ssl_ecdh_curve`). Python's `ssl` names one curve only
(`set_ecdh_curve`; `set_groups` arrives in a later Python), so `set_groups` below
hands OpenSSL the list through its own `SSL_CTX_set1_groups_list`, after checking that
it holds the right OpenSSL object; where it cannot, the context keeps P-256 alone.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

from cdb_service.security.connection import GuardedProtocol

log = logging.getLogger("cdb.tls")

# Mozilla Server Side TLS, "intermediate" (v5.7): TLS 1.2 suites; TLS 1.3 suites are
# OpenSSL's defaults, all of which that profile allows.
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)


GROUPS = "X25519:P-256:P-384"
_SSL_CTRL_SET_GROUPS_LIST = 92  # OpenSSL's SSL_CTX_set1_groups_list is this ctrl


def set_groups(context: ssl.SSLContext, groups: str) -> bool:
    """Limit `context` to these key exchange groups (OpenSSL names, colon-separated);
    False where this Python cannot (nothing is changed then)."""
    native = getattr(context, "set_groups", None)
    if native is not None:  # Python >= 3.15
        native(groups)
        return True
    if sys.implementation.name != "cpython":
        return False
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)  # its symbols and those of the libssl it links
        get_options = lib.SSL_CTX_get_options
        ctrl = lib.SSL_CTX_ctrl
    except (OSError, AttributeError):
        return False
    get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
    ctrl.restype = ctypes.c_long
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    # CPython's SSLContext object holds its SSL_CTX pointer right after the object
    # header; the options read back through it prove that it is the one.
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer or get_options(pointer) != context.options:
        return False
    return bool(ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.c_char_p(groups.encode())) == 1)


def server_context(cert_file: Path, key_file: Path, client_ca_files: list[Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # Mozilla intermediate allows X25519, prime256v1 and secp384r1 only.
    if not set_groups(context, GROUPS):
        log.warning("cannot set the TLS groups %s; offering P-256 alone", GROUPS)
        context.set_ecdh_curve("prime256v1")
    context.load_cert_chain(cert_file, key_file)
    for ca_file in client_ca_files:
        context.load_verify_locations(cafile=str(ca_file))
    # Optional at the TLS layer so that health checks need no certificate; the app
    # demands one on /api. A certificate that is presented must verify.
    context.verify_mode = ssl.CERT_OPTIONAL if client_ca_files else ssl.CERT_NONE
    return context


# Marks a request that came over the proxy-mode Unix socket (see `security.gate`).
PROXY_SOCKET = "cdb.proxy_socket"


class PeerCertificateProtocol(GuardedProtocol):
    """uvicorn's protocol, telling the app what the transport knows: the client
    certificate of a TLS connection, or that the connection came over a Unix socket."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            self._extend(PROXY_SOCKET, {})
            return
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        tls = {
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_error": None,
            "tls_version": ssl_object.version(),
            "cipher_suite": (ssl_object.cipher() or ("",))[0],
        }
        self._extend("tls", tls)

    def _extend(self, name: str, value: dict[str, Any]) -> None:
        app = self.app

        async def extended(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[name] = value
            await app(scope, receive, send)

        self.app = extended
