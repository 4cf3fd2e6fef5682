"""One controller shape for every kind: list, read, history, create, replace, delete.

Built per kind from its `KindSpec` (see `controllers()`); no kind has a copy of
its own. Policy decisions (who may write, what a caller may see) are asked of
`security.policy`; writes go through `EntryWrites`, which makes each one revision.

This module does not use postponed annotations: the request body type is the
kind's schema, chosen at run time, and litestar reads it from the signature.
"""

import datetime as dt
import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter

from cdb_service.db.revisions import MAX_REVISION
from cdb_service.kernel.problems import FieldError, Problem, invalid, not_found, stale
from cdb_service.registry.idempotency import IdempotentRequest
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.reads import EntryReads
from cdb_service.registry.spec import KindSpec
from cdb_service.registry.writes import EntryWrites
from cdb_service.security import policy
from cdb_service.security.audit import Who
from cdb_service.security.policy import Principal
from cdb_service.settings import Settings
from cdb_service.web.conditional import none_match
from cdb_service.web.consistency import MIN_REVISION_DOC, REVISION_HEADER, require_revision
from cdb_service.web.docs import problems
from cdb_service.web.pagination import decode_cursor, encode_cursor

PAGING = frozenset({"limit", "cursor", "valid_at", "revision", "min_revision"})


def etag(document: dict[str, Any]) -> str:
    return f'"{document["version"]}"'


def _filters(spec: KindSpec, request: Request[Any, Any, Any]) -> dict[str, Any]:
    known = spec.all_filters
    out: dict[str, Any] = {}
    errors = []
    for name, value in request.query_params.items():
        if name in PAGING:
            continue
        flt = known.get(name)
        if flt is None:
            errors.append(
                FieldError(("query", name), f"unknown parameter; filters: {', '.join(known)}")
            )
            continue
        try:
            out[name] = flt.parse(value)
        except ValueError:
            errors.append(FieldError(("query", name), "is not a valid id"))
    if errors:
        raise Problem(400, "Malformed request", "; ".join(f"{e.loc[1]}: {e.msg}" for e in errors),
                      "malformed-request", errors)  # fmt: skip
    return out


def _if_match(request: Request[Any, Any, Any], current: dict[str, Any]) -> int:
    header = request.headers.get("if-match")
    if not header:
        raise Problem(428, "Precondition required",
                      "send If-Match with the ETag you read, so that no one else's change is lost",
                      "precondition-required")  # fmt: skip
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags or etag(current) in tags:
        return int(current["version"])
    raise stale(-1 if not tags else _version_of(tags[0]), int(current["version"]))


def _version_of(tag: str) -> int:
    try:
        return int(tag.strip('W/"'))
    except ValueError:
        return -1


async def _reach(reads: EntryReads, settings: Settings, min_revision: int | None) -> None:
    await require_revision(
        min_revision, reads.reached, settings.min_revision_wait_s, settings.retry_after_s
    )


async def _current(reads: EntryReads, spec: KindSpec, entry_id: uuid.UUID) -> dict[str, Any]:
    document = await reads.get(spec, entry_id)
    if document is None:
        raise not_found(spec.name, entry_id)
    return document


def controller_for(spec: KindSpec) -> type[Controller]:
    schema: Any = spec.schema
    filter_doc = ", ".join(spec.all_filters)

    class KindController(Controller):
        path = f"/{spec.name}"
        tags = [spec.name]  # noqa: RUF012

        @get(
            "/",
            summary=f"List {spec.name}",
            responses=problems(400, 422),
            description=f"Filters: {filter_doc}. Keyset pages in id order; `next` is the "
            "cursor of the following page, which reads the same revision.",
        )
        async def collection(
            self,
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            principal: NamedDependency[Principal],
            settings: NamedDependency[Settings],
            limit: int = Parameter(default=100, ge=1, le=1000),
            cursor: str | None = None,
            valid_at: dt.date | None = Parameter(default=None, description="legal validity date"),
            revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description="as of revision"
            ),
            min_revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
            ),
        ) -> dict[str, Any]:
            filters = _filters(spec, request)
            await _reach(reads, settings, min_revision)
            after = None
            if cursor:
                revision, after = decode_cursor(cursor)
            if revision is not None:
                head = await reads.head()
                if revision > head:
                    raise invalid(
                        [FieldError(("query", "revision"), f"is after the head revision {head}")]
                    )
            page = await reads.collection(
                spec,
                filters=filters,
                valid_at=valid_at,
                revision=revision,
                after=after,
                limit=limit,
            )
            return {
                "items": [policy.redact(d, spec.private_fields, principal) for d in page.items],
                "revision": page.revision,
                "next": encode_cursor(page.revision, page.next) if page.next else None,
            }

        @get("/{entry_id:uuid}", summary=f"One {spec.name} entry", responses=problems(404))
        async def one(
            self,
            entry_id: FromPath[uuid.UUID],
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            principal: NamedDependency[Principal],
            settings: NamedDependency[Settings],
            revision: int | None = Parameter(default=None, ge=0, le=MAX_REVISION),
            min_revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
            ),
        ) -> Response[Any]:
            await _reach(reads, settings, min_revision)
            document = await reads.get(spec, entry_id, revision)
            if document is None:
                at = f" at revision {revision}" if revision is not None else ""
                raise Problem(404, "Not found", f"no {spec.name} entry {entry_id}{at}", "not-found")
            tag = etag(document)
            if none_match(request.scope, tag):
                return Response(None, status_code=304, headers={"ETag": tag})
            visible = policy.redact(document, spec.private_fields, principal)
            return Response(visible, headers={"ETag": tag})

        @get(
            "/{entry_id:uuid}/history",
            summary="Every version, newest first",
            responses=problems(404),
        )
        async def history(
            self,
            entry_id: FromPath[uuid.UUID],
            reads: NamedDependency[EntryReads],
            principal: NamedDependency[Principal],
            settings: NamedDependency[Settings],
            min_revision: int | None = Parameter(
                default=None, ge=0, le=MAX_REVISION, description=MIN_REVISION_DOC
            ),
        ) -> dict[str, Any]:
            await _reach(reads, settings, min_revision)
            versions = [v for v in await reads.history(entry_id) if v["kind"] == spec.name]
            if not versions:
                raise not_found(spec.name, entry_id)
            return {
                "items": [
                    v | {"document": policy.redact(v["document"], spec.private_fields, principal)}
                    for v in versions
                ]
            }

        @post("/", summary=f"Create a {spec.name} entry", responses=problems(400, 409, 422),
              description="`Idempotency-Key` makes a retry return the first result.")  # fmt: skip
        async def create(
            self,
            data: JSONBody[schema],
            request: Request[Any, Any, Any],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
        ) -> Response[Any]:
            policy.require_write(principal, data.owner)
            key = request.headers.get("idempotency-key")
            idempotency = None
            if key:
                caller = f"{principal.subject}|{principal.certificate.facts.x5t_s256}"
                idempotency = IdempotentRequest.of(
                    caller, key[:200], "POST", request.url.path, await request.body()
                )
            created = await writes.create(spec, data, who, idempotency=idempotency)
            document = created.document
            headers = {
                "Location": f"{request.url.path.rstrip('/')}/{document['id']}",
                "ETag": etag(document),
                REVISION_HEADER: str(document["revision"]),
            }
            if created.replayed:
                headers["Idempotent-Replayed"] = "true"
            visible = policy.redact(document, spec.private_fields, principal)
            return Response(visible, status_code=201, headers=headers)

        @put("/{entry_id:uuid}", summary="Replace an entry (If-Match required)",
             responses=problems(400, 404, 409, 412, 422, 428))  # fmt: skip
        async def replace(
            self,
            entry_id: FromPath[uuid.UUID],
            data: JSONBody[schema],
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
        ) -> Response[Any]:
            current = await _current(reads, spec, entry_id)
            policy.require_write(principal, data.owner, current["owner"])
            expected = _if_match(request, current)
            document = await writes.update(spec, entry_id, data, who, expected)
            visible = policy.redact(document, spec.private_fields, principal)
            headers = {"ETag": etag(document), REVISION_HEADER: str(document["revision"])}
            return Response(visible, headers=headers)

        @delete(
            "/{entry_id:uuid}",
            summary="Delete an entry (If-Match required); a tombstone stays",
            responses=problems(404, 409, 412, 428),
            status_code=204,
        )
        async def remove(
            self,
            entry_id: FromPath[uuid.UUID],
            request: Request[Any, Any, Any],
            reads: NamedDependency[EntryReads],
            writes: NamedDependency[EntryWrites],
            principal: NamedDependency[Principal],
            who: NamedDependency[Who],
            cascade: bool = Parameter(
                default=False, description="also delete the owner's referrers"
            ),
        ) -> Response[None]:
            current = await _current(reads, spec, entry_id)
            policy.require_write(principal, current["owner"])
            expected = _if_match(request, current)
            gone = await writes.delete(spec, entry_id, who, expected, cascade=cascade)
            return Response(None, status_code=204, headers={REVISION_HEADER: str(gone["revision"])})

    KindController.__name__ = KindController.__qualname__ = (
        "".join(part.title() for part in spec.name.split("-")) + "Controller"
    )
    return KindController


def controllers() -> list[type[Controller]]:
    return [controller_for(spec) for spec in KINDS.values()]
