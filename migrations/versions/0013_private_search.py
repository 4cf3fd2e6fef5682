"""private search text: named persons searched only for callers who may read them

`search` no longer holds a kind's private fields (national members' and national
correspondents' `person`): a reader could find an entry by a name it may not see, and
so rebuild the name letter by letter with `count=true`. `search_full` holds the whole
text, searched only for administrators and operators (NULL for kinds without private
fields).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
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
# The kinds' private fields when this migration was written (`KindSpec.private_fields`).
PRIVATE = {"national_correspondents": ("person",), "national_members": ("person",)}


# As in 0006: a nullable column is added (and dropped) in place on both databases.


def upgrade() -> None:
    for name in TABLES:
        op.add_column(name, sa.Column("search_full", sa.Text(), nullable=True))
    _refill(private=True)


def _refill(private: bool) -> None:
    """The search text of the kinds with private fields, by the same rule as a write:
    `search` without them (and `search_full` with them) after the upgrade, `search`
    with them again after the downgrade."""
    from cdb_service.kernel.folding import search_text

    bind = op.get_bind()
    for name, hidden in PRIVATE.items():
        # Reflected, so that JSON columns are read back as values, not text.
        table = sa.Table(name, sa.MetaData(), autoload_with=bind)
        for row in bind.execute(sa.select(table)).mappings().all():
            values = dict(row)
            if private:
                text = {"search": search_text(values, hidden), "search_full": search_text(values)}
            else:
                text = {"search": search_text(values)}
            bind.execute(table.update().where(table.c.id == row["id"]).values(**text))


def downgrade() -> None:
    _refill(private=False)
    for name in TABLES:
        op.execute(f"ALTER TABLE {name} DROP COLUMN search_full")
