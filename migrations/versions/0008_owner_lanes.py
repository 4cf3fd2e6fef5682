"""owner lanes: routing_parties.shared_with; audit_events.client_request_id (the
X-Request-ID a client chose, kept apart from the service's id)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_B = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "routing_parties",
        sa.Column("shared_with", JSON_B, nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column("audit_events", sa.Column("client_request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch copy of routing_parties would have to
    # drop a table that other tables' rows refer to.
    op.execute("ALTER TABLE routing_parties DROP COLUMN shared_with")
    op.execute("ALTER TABLE audit_events DROP COLUMN client_request_id")
