"""Commands an operator runs to check: the audit chain, an extract, a restore, certificates."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cdb_service.cli.common import print_json, with_services
from cdb_service.mistakes import UserMistake
from cdb_service.settings import Settings


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.security.audit import verify_chain

    report = asyncio.run(with_services(settings, lambda s: verify_chain(s.sessions)))
    if report.ok:
        print_json({"status": "ok", "events": report.checked})
        return 0
    print_json(
        {
            "status": "broken",
            "event": report.broken_at,
            "reason": report.reason,
            "verified_before_it": report.checked,
        }
    )
    return 1


def _key_set(source: str, cacert: str | None, args: argparse.Namespace | None = None) -> Any:
    """The JWKS that verifies extracts, from the service's URL or a saved file.

    With `args` (verify-extract's): the client certificate and token they name, for a
    JWKS behind mutual TLS; a token from an issuer is fetched with client credentials.
    """
    import httpx
    from joserfc.jwk import KeySet

    from cdb_service import outbound

    jwks: Any  # checked below, then handed to joserfc as it came
    if source.startswith(("https://", "http://")):
        tls = outbound.TlsIdentity(
            Path(cacert) if cacert else None,
            getattr(args, "cert", None),
            getattr(args, "key", None),
        )
        auth = outbound.credentials_of(args, tls, scope="cdb.read") if args else outbound.NO_TOKEN
        try:
            with outbound.client("", tls, auth, timeout=httpx.Timeout(10)) as http:
                jwks = http.get(source).raise_for_status().json()
        except outbound.TokenRefused as refused:
            raise UserMistake(str(refused)) from None
    else:
        jwks = json.loads(Path(source).read_text())
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise UserMistake(f"{source} is not a JWKS (a JSON object with a 'keys' list)")
    published: Any = jwks
    return KeySet.import_key_set(published)


def cmd_verify_extract(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service import outbound
    from cdb_service.distribution.extracts import verify_lines

    mistake = outbound.argument_mistake(args)
    if mistake:
        raise UserMistake(mistake)
    lines = Path(args.file).read_bytes().splitlines(keepends=True)
    verdict = verify_lines(lines, _key_set(args.jwks, args.cacert, args))
    if verdict.ok:
        print_json(
            {
                "status": "ok",
                "revision": verdict.revision,
                "entries": verdict.count,
                "detail": verdict.detail,
            }
        )
        return 0
    where = f"line {verdict.line}: " if verdict.line else ""
    print(f"extract does not verify: {where}{verdict.detail}", file=sys.stderr)
    print_json({"status": "failed", "line": verdict.line, "detail": verdict.detail})
    return 1


def _file_or_text(value: str) -> str:
    """A file's text if `value` names one, else `value` itself (a token is no file name,
    and may be too long to be one)."""
    try:
        return Path(value).read_text() if Path(value).is_file() else value
    except OSError:
        return value


def cmd_verify_receipt(args: argparse.Namespace, settings: Settings) -> int:
    """A write's `CDB-Receipt`, checked offline: the signature with the registry's keys,
    the listed entries against their digest, and (with --request) the file that was sent."""
    import hashlib

    from cdb_service import outbound
    from cdb_service.security.receipts import ReceiptInvalid, verify_receipt

    mistake = outbound.argument_mistake(args)
    if mistake:
        raise UserMistake(mistake)
    token = _file_or_text(args.receipt).strip()
    try:
        payload = verify_receipt(token, _key_set(args.jwks, args.cacert, args))
        if args.request is not None:
            sent = hashlib.sha256(Path(args.request).read_bytes()).hexdigest()
            if sent != payload.get("request_sha256"):
                raise ReceiptInvalid(f"{args.request} is not the request this receipt is for "
                                     "(request_sha256 differs)")  # fmt: skip
    except ReceiptInvalid as invalid:
        print(f"receipt does not verify: {invalid}", file=sys.stderr)
        print_json({"status": "failed", "detail": str(invalid)})
        return 1
    print_json({"status": "ok"} | payload)
    return 0


def cmd_verify_restore(args: argparse.Namespace, settings: Settings) -> int:
    from cdb_service.ops.restore_check import as_report, verify_restore

    if bool(args.extract) != bool(args.jwks):
        raise UserMistake("--extract and --jwks go together: the extract's signature is checked "
                          "with the service's keys")  # fmt: skip
    lines = Path(args.extract).read_bytes().splitlines(keepends=True) if args.extract else None
    key_set = _key_set(args.jwks, args.cacert) if args.jwks else None
    checks = asyncio.run(with_services(
        settings, lambda s: verify_restore(s.engine, s.sessions, lines, key_set)))  # fmt: skip
    report = as_report(checks)
    print_json(report)
    if report["status"] == "ok":
        return 0
    failed = next(c for c in checks if not c.ok)
    print(f"restore does not verify: {failed.name}: {failed.detail}", file=sys.stderr)
    return 1


def cmd_certificates(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from cdb_service.registry.kinds import KINDS
    from cdb_service.registry.kinds.routing_parties.expiry import expiring

    parties = asyncio.run(with_services(
        settings, lambda s: s.reads.documents([KINDS["routing-parties"]])))  # fmt: skip
    found = expiring(parties, dt.timedelta(days=args.within_days), dt.datetime.now(dt.UTC))
    print_json({"within_days": args.within_days, "certificates": found})
    # Non-zero when there is something to act on: a timer's OnFailure= then tells someone.
    return 1 if found else 0


def cmd_verify_package(args: argparse.Namespace, settings: Settings) -> int:
    """A configuration package (ZIP), checked offline: the manifest's signature with the
    registry's JWKS, every file's SHA-256, the content digest."""
    from cdb_service import outbound
    from cdb_service.distribution.package_check import verify_package

    mistake = outbound.argument_mistake(args)
    if mistake:
        raise UserMistake(mistake)
    try:
        data = Path(args.file).read_bytes()
    except OSError as error:
        raise UserMistake(f"cannot read {args.file}: {error.strerror}") from None
    verdict = verify_package(data, _key_set(args.jwks, args.cacert, args))
    if not verdict.ok:
        where = f"{verdict.file}: " if verdict.file else ""
        print(f"package {args.file} does not verify: {where}{verdict.detail}", file=sys.stderr)
        print_json({"status": "failed", "file": verdict.file, "detail": verdict.detail})
        return 1
    manifest = verdict.manifest or {}
    print_json({
        "status": "ok", "party": manifest.get("party"), "owner": manifest.get("owner"),
        "revision": manifest.get("revision"), "effective_from": manifest.get("effective_from"),
        "package_digest": manifest.get("package_digest"), "signed_by": verdict.kid,
    })  # fmt: skip
    return 0
