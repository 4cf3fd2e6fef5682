"""gazetteer: a content digest per country's load; one postal code may lie in several NUTS 3

The digest names what a country's gazetteer holds (the lookup index follows it, the
mirror compares it with its source's). The primary key gains `nuts3`: a TERCET file
without LAU columns lists a postal code once per NUTS 3 region it lies in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 18:10:00
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gazetteer_loads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
    with op.batch_alter_table("gazetteer_places", schema=None) as batch_op:
        batch_op.drop_constraint("pk_gazetteer_places", type_="primary")
        batch_op.create_primary_key(
            "pk_gazetteer_places", ["country", "postal_code", "lau", "nuts3"]
        )
    _digest_existing_loads()


def _digest_existing_loads() -> None:
    """The digest of what each country already holds (as `lookup.gazetteer._digest`)."""
    bind = op.get_bind()
    countries = [row[0] for row in bind.execute(sa.text("SELECT country FROM gazetteer_loads"))]
    for country in countries:
        total = 0
        rows = bind.execute(
            sa.text("SELECT postal_code, lau, nuts3, lau_name FROM gazetteer_places"
                    " WHERE country = :country"), {"country": country},
        )  # fmt: skip
        for postal_code, lau, nuts3, lau_name in rows:
            line = f"{postal_code}\t{lau}\t{nuts3}\t{lau_name or ''}".encode()
            total = (total + int.from_bytes(hashlib.sha256(line).digest(), "big")) % (1 << 256)
        bind.execute(
            sa.text("UPDATE gazetteer_loads SET digest = :digest WHERE country = :country"),
            {"digest": f"{total:064x}", "country": country},
        )


def downgrade() -> None:
    with op.batch_alter_table("gazetteer_places", schema=None) as batch_op:
        batch_op.drop_constraint("pk_gazetteer_places", type_="primary")
        batch_op.create_primary_key("pk_gazetteer_places", ["country", "postal_code", "lau"])
    with op.batch_alter_table("gazetteer_loads", schema=None) as batch_op:
        batch_op.drop_column("digest")
