"""scheduled_for: an acknowledgement of a package held, to be applied at that moment

Issue 28: an agent that has fetched, verified and scheduled the next package says so
before its effective_from (`POST .../acknowledgements` with `scheduled_for`), so that
the rollout of a certificate switching into use is confirmed before the switch, not
after it. The applied acknowledgement of the same digest and target later clears it
(the row is then an applied one). Null: applied.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, as 0018: SQLite 3.35+ adds and drops a column in
# place; a nullable column without a default needs no copy of the table.


def upgrade() -> None:
    op.add_column(
        "acknowledgements",
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.execute("ALTER TABLE acknowledgements DROP COLUMN scheduled_for")
