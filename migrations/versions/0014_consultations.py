"""consultations: who read which entry's named persons, counted per hour

Annex I 5.1(d) and its footnote 1 (Regulation (EU) 2018/1725, article 88): every read
by an administrator or operator that shows a kind's private field is recorded, one row
per (hour, caller, way of reading, entry version) with the number of reads.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consultations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("client_id", sa.String(length=300), nullable=True),
        sa.Column("cert_thumbprint", sa.String(length=100), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consultations")),
        sa.UniqueConstraint("key", name=op.f("uq_consultations_key")),
    )
    op.create_index(op.f("ix_consultations_entry_id"), "consultations", ["entry_id"])
    op.create_index(op.f("ix_consultations_last_at"), "consultations", ["last_at"])
    op.create_index(op.f("ix_consultations_subject"), "consultations", ["subject"])


def downgrade() -> None:
    op.drop_index(op.f("ix_consultations_subject"), table_name="consultations")
    op.drop_index(op.f("ix_consultations_last_at"), table_name="consultations")
    op.drop_index(op.f("ix_consultations_entry_id"), table_name="consultations")
    op.drop_table("consultations")
