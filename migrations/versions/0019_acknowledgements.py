"""acknowledgements: which configuration package each access point has applied

Issue 28: `cdb-service connector-sync` posts, per target it applied a package to, the
package's digest (`POST /api/v1/access-points/{party}/acknowledgements`); the rollout
status compares them with the packages that carry each change of trust material.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "acknowledgements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("party", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("package_digest", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=20), nullable=False),
        sa.Column("target_name", sa.String(length=100), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "answer", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acknowledgements")),
        sa.UniqueConstraint(
            "party",
            "target_kind",
            "target_name",
            "package_digest",
            name=op.f("uq_acknowledgements_target_digest"),
        ),
    )
    op.create_index(
        "ix_acknowledgements_party_received",
        "acknowledgements",
        ["party", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_acknowledgements_party_received", table_name="acknowledgements")
    op.drop_table("acknowledgements")
