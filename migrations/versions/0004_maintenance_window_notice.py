"""maintenance windows: derived notice and preferred-hours fields

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DERIVED = (
    ("required_notice_working_days", sa.Integer()),
    ("notice_working_days", sa.Integer()),
    ("notice_met", sa.Boolean()),
    ("within_preferred_hours", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        for name, type_ in DERIVED:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    _backfill()
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        for name, type_ in DERIVED:
            batch_op.alter_column(name, existing_type=type_, nullable=False)


def _backfill() -> None:
    """Derive the new fields of windows announced before this migration."""
    import dataclasses
    import datetime as dt

    from cdb_service.kernel.calendar import derive

    def aware(value: dt.datetime | str) -> dt.datetime:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    bind = op.get_bind()
    table = sa.table(
        "maintenance_windows",
        sa.column("id"),
        sa.column("starts_at"),
        sa.column("ends_at"),
        sa.column("announced_at"),
        *(sa.column(name) for name, _ in DERIVED),
    )
    rows = bind.execute(
        sa.select(table.c.id, table.c.starts_at, table.c.ends_at, table.c.announced_at)
    ).all()
    for row in rows:
        derived = derive(aware(row.starts_at), aware(row.ends_at), aware(row.announced_at))
        values = dataclasses.asdict(derived)
        bind.execute(sa.update(table).where(table.c.id == row.id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        for name, _ in reversed(DERIVED):
            batch_op.drop_column(name)
