"""search text: every entry's text folded for case- and accent-insensitive search

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "routing_parties",
    "authorities",
    "national_correspondents",
    "national_members",
    "jurisdiction_criteria",
    "maintenance_windows",
    "incidents",
)


# A nullable column is added (and dropped) in place on both databases: SQLite's batch
# mode would copy each table, which the foreign keys between kinds refuse once rows exist.


def upgrade() -> None:
    for name in TABLES:
        op.add_column(name, sa.Column("search", sa.Text(), nullable=True))
    _backfill()


def _backfill() -> None:
    """Fill the search text of entries written before this migration, by the same rule."""
    from cdb_service.kernel.folding import search_text

    bind = op.get_bind()
    for name in TABLES:
        # Reflected, so that JSON columns are read back as values, not text.
        table = sa.Table(name, sa.MetaData(), autoload_with=bind)
        rows = bind.execute(sa.select(table)).mappings().all()
        for row in rows:
            bind.execute(
                table.update().where(table.c.id == row["id"]).values(search=search_text(dict(row)))
            )


def downgrade() -> None:
    for name in TABLES:
        op.execute(f"ALTER TABLE {name} DROP COLUMN search")
