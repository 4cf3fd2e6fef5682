"""personal data apart: named persons in `personal_data`, the documents carrying refs

Annex I 5.5, 5.6 and Regulation (EU) 2018/1725 art. 4(1)(e): a named person must be
erasable while history, the change feed, extracts and the audit trail still verify. Each
private field's value (`person` of national members and national correspondents) moves
into a row of `personal_data`; the current rows and every entry version carry
`{"$personal": ref}` instead (`cdb_service/db/personal.py`). A value an entry kept
unchanged across its versions becomes one row. PostgreSQL keeps the old tuples until
they are vacuumed: run `VACUUM FULL entry_versions, national_members,
national_correspondents` once after this upgrade (docs/operations.md).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 10:00:00
"""

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The kinds' private fields when this migration was written (`KindSpec.private_fields`).
PRIVATE = {
    "national-members": ("national_members", ("person",)),
    "national-correspondents": ("national_correspondents", ("person",)),
}


def upgrade() -> None:
    op.create_table(
        "personal_data",
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(length=60), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column(
            "value", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_personal_data")),
    )
    op.create_index(op.f("ix_personal_data_entry_id"), "personal_data", ["entry_id"])
    _seal_existing()


def _seal_existing() -> None:
    from cdb_service.db.personal import MARK, PersonalData, canonical, is_empty, new_row, ref_of

    bind = op.get_bind()
    versions = sa.Table("entry_versions", sa.MetaData(), autoload_with=bind)
    stored = PersonalData.__table__
    now = dt.datetime.now(dt.UTC)
    for kind, (table_name, fields) in PRIVATE.items():
        table = sa.Table(table_name, sa.MetaData(), autoload_with=bind)
        rows = bind.execute(
            sa.select(versions.c.seq, versions.c.entry_id, versions.c.document)
            .where(versions.c.kind == kind)
            .order_by(versions.c.entry_id, versions.c.version)
        ).all()
        refs: dict[tuple[Any, str, str], str] = {}  # (entry, field, value) -> ref

        def sealed(
            entry_id: Any,
            name: str,
            value: Any,
            kind: str = kind,
            refs: dict[tuple[Any, str, str], str] = refs,
        ) -> Any:
            if is_empty(value) or ref_of(value) is not None:
                return value
            entry_id = entry_id if isinstance(entry_id, uuid.UUID) else uuid.UUID(str(entry_id))
            key = (entry_id, name, canonical(value))
            if key not in refs:
                row = new_row(kind, entry_id, name, value, now)
                bind.execute(stored.insert().values(**row))
                refs[key] = row["ref"]
            return {MARK: refs[key]}

        for seq, entry_id, document in rows:
            changed = {n: sealed(entry_id, n, document.get(n)) for n in fields if n in document}
            if any(changed[n] != document.get(n) for n in changed):
                bind.execute(
                    versions.update()
                    .where(versions.c.seq == seq)
                    .values(document=document | changed)
                )
        for row in bind.execute(sa.select(table)).mappings().all():
            changed = {n: sealed(row["id"], n, row[n]) for n in fields}
            if any(changed[n] != row[n] for n in fields):
                bind.execute(table.update().where(table.c.id == row["id"]).values(**changed))


def downgrade() -> None:
    from cdb_service.db.personal import ref_of

    bind = op.get_bind()
    stored = sa.Table("personal_data", sa.MetaData(), autoload_with=bind)
    values = {ref: value for ref, value in bind.execute(sa.select(stored.c.ref, stored.c.value))}
    versions = sa.Table("entry_versions", sa.MetaData(), autoload_with=bind)

    def plain(value: Any) -> Any:
        ref = ref_of(value)
        return value if ref is None else values.get(ref)  # erased: None

    for kind, (table_name, fields) in PRIVATE.items():
        table = sa.Table(table_name, sa.MetaData(), autoload_with=bind)
        for seq, document in bind.execute(
            sa.select(versions.c.seq, versions.c.document).where(versions.c.kind == kind)
        ).all():
            changed = {n: plain(document.get(n)) for n in fields if n in document}
            bind.execute(
                versions.update().where(versions.c.seq == seq).values(document=document | changed)
            )
        for row in bind.execute(sa.select(table)).mappings().all():
            bind.execute(
                table.update()
                .where(table.c.id == row["id"])
                .values(**{n: plain(row[n]) for n in fields})
            )
    op.drop_index(op.f("ix_personal_data_entry_id"), table_name="personal_data")
    op.drop_table("personal_data")
