"""source_sha256: the digest of the batch line an entry's current row was written from

A re-import of an owner's export finds most entries unchanged. With the digest of the
validated line each row was last written from, such an entry is known unchanged by one
comparison, before its document is validated a second time and its column values are
built (`registry/store/batches.py`). Any other write of the row clears it
(`RevisionWriter`), so a digest never vouches for a row it did not write.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The entry tables when this migration was written (every kind's current rows).
TABLES = (
    "owners",
    "routing_parties",
    "authorities",
    "national_correspondents",
    "national_members",
    "jurisdiction_criteria",
    "maintenance_windows",
    "incidents",
)


# Plain ALTER TABLE on both databases (SQLite 3.35+ drops a column in place): batch mode
# would copy each table, which the foreign keys between kinds refuse once rows exist.


def upgrade() -> None:
    for name in TABLES:
        op.add_column(name, sa.Column("source_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for name in TABLES:
        op.execute(f"ALTER TABLE {name} DROP COLUMN source_sha256")
