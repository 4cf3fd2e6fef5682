"""owners: who owns entries and which instruments each takes part in (issue 31)

The member states and Eurojust stay owners by default (`kernel/owners.py`); a row here
is an operator's entry replacing a default or registering a third country.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 22:17:08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("code", sa.String(length=2), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "instruments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("search", sa.Text(), nullable=True),
        sa.Column("search_full", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owners")),
        sa.UniqueConstraint("code", name=op.f("uq_owners_code")),
    )
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owners_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_owners_revision"), ["revision"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owners_revision"))
        batch_op.drop_index(batch_op.f("ix_owners_owner"))
    op.drop_table("owners")
