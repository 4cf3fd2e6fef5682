"""search text: German transliterations (Muenchen finds München)

Entries whose text has umlauts also store its transliteration (ä → ae, ö → oe, ü → ue)
in `search` and `search_full` (`kernel.folding.with_transliteration`). Written again for
every entry that has one; the downgrade writes the text without it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 22:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
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
# The kinds' private fields when this migration was written (as in 0013).
PRIVATE = {"national_correspondents": ("person",), "national_members": ("person",)}


def upgrade() -> None:
    _refill(transliterated=True)


def downgrade() -> None:
    _refill(transliterated=False)


def _refill(transliterated: bool) -> None:
    """Rewrites the search text of rows whose text has umlauts (the others do not
    change): with the transliteration after the upgrade, without it after the
    downgrade. Rows are read in pages, so a large registry is not held whole."""
    from cdb_service.kernel.folding import search_text

    bind = op.get_bind()
    for name in TABLES:
        table = sa.Table(name, sa.MetaData(), autoload_with=bind)
        hidden = PRIVATE.get(name, ())
        last = None
        while True:
            query = sa.select(table).order_by(table.c.id).limit(1000)
            if last is not None:
                query = query.where(table.c.id > last)
            rows = bind.execute(query).mappings().all()
            if not rows:
                break
            for row in rows:
                values = dict(row)
                text = {"search": search_text(values, hidden, transliterated)}
                if hidden:
                    text["search_full"] = search_text(values, (), transliterated)
                if any(row[column] != value for column, value in text.items()):
                    bind.execute(table.update().where(table.c.id == row["id"]).values(**text))
            last = rows[-1]["id"]
