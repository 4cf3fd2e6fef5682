"""initial registry schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:34:33.962173
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gazetteer_loads",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("place_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("country", name=op.f("pk_gazetteer_loads")),
    )
    op.create_table(
        "gazetteer_places",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("postal_code", sa.String(length=12), nullable=False),
        sa.Column("lau", sa.String(length=20), nullable=False),
        sa.Column("lau_name", sa.String(length=200), nullable=True),
        sa.Column("nuts3", sa.String(length=5), nullable=False),
        sa.PrimaryKeyConstraint("country", "postal_code", "lau", name=op.f("pk_gazetteer_places")),
    )
    with op.batch_alter_table("gazetteer_places", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gazetteer_places_nuts3"), ["nuts3"], unique=False)

    op.create_table(
        "maintenance_windows",
        sa.Column("component", sa.String(length=100), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
        sa.UniqueConstraint("owner", "ref", name=op.f("uq_maintenance_windows_owner_ref")),
    )
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_maintenance_windows_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_maintenance_windows_revision"), ["revision"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_maintenance_windows_starts_at"), ["starts_at"], unique=False
        )

    registry_head = op.create_table(
        "registry_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_head")),
    )
    # The lock row: its value is the head revision (0 for an empty registry).
    op.bulk_insert(registry_head, [{"id": 1, "revision": 0}])
    op.create_table(
        "revisions",
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("change_count", sa.Integer(), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("revision", name=op.f("pk_revisions")),
    )
    op.create_table(
        "routing_parties",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "identifiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("endpoint_url", sa.String(length=2000), nullable=False),
        sa.Column(
            "roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "services",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "certificates",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("go_live_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_parties")),
        sa.UniqueConstraint("name", name=op.f("uq_routing_parties_name")),
        sa.UniqueConstraint("owner", "ref", name=op.f("uq_routing_parties_owner_ref")),
    )
    with op.batch_alter_table("routing_parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routing_parties_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_routing_parties_revision"), ["revision"], unique=False)

    op.create_table(
        "authorities",
        sa.Column("code", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column(
            "names",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "address",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "contacts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "languages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("routing_party_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["authorities.id"],
            name=op.f("fk_authorities_parent_id_authorities"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["routing_party_id"],
            ["routing_parties.id"],
            name=op.f("fk_authorities_routing_party_id_routing_parties"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorities")),
        sa.UniqueConstraint("code", name=op.f("uq_authorities_code")),
        sa.UniqueConstraint("owner", "ref", name=op.f("uq_authorities_owner_ref")),
    )
    with op.batch_alter_table("authorities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_authorities_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_authorities_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_authorities_revision"), ["revision"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_authorities_routing_party_id"), ["routing_party_id"], unique=False
        )

    op.create_table(
        "entry_versions",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=10), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["revision"],
            ["revisions.revision"],
            name=op.f("fk_entry_versions_revision_revisions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_entry_versions")),
        sa.UniqueConstraint("entry_id", "version", name=op.f("uq_entry_versions_entry_id_version")),
    )
    with op.batch_alter_table("entry_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entry_versions_kind_entry", ["kind", "entry_id", "version"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_entry_versions_revision"), ["revision"], unique=False)

    op.create_table(
        "national_members",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column(
            "contact",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "person",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "languages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("routing_party_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["routing_party_id"],
            ["routing_parties.id"],
            name=op.f("fk_national_members_routing_party_id_routing_parties"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_national_members")),
        sa.UniqueConstraint("owner", "ref", name=op.f("uq_national_members_owner_ref")),
    )
    with op.batch_alter_table("national_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_national_members_country"), ["country"], unique=False)
        batch_op.create_index(batch_op.f("ix_national_members_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_national_members_revision"), ["revision"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_national_members_routing_party_id"), ["routing_party_id"], unique=False
        )

    op.create_table(
        "routing_party_identifiers",
        sa.Column("party_id", sa.String(length=200), nullable=False),
        sa.Column("party_id_type", sa.String(length=200), nullable=False),
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["routing_parties.id"],
            name=op.f("fk_routing_party_identifiers_entry_id_routing_parties"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "party_id", "party_id_type", name=op.f("pk_routing_party_identifiers")
        ),
    )
    with op.batch_alter_table("routing_party_identifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_party_identifiers_entry_id"), ["entry_id"], unique=False
        )

    op.create_table(
        "jurisdiction_criteria",
        sa.Column("authority_id", sa.Uuid(), nullable=False),
        sa.Column("instrument", sa.String(length=60), nullable=False),
        sa.Column("competence", sa.String(length=20), nullable=False),
        sa.Column(
            "subject_matters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "stages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "geo",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=2), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name=op.f("fk_jurisdiction_criteria_authority_id_authorities"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jurisdiction_criteria")),
        sa.UniqueConstraint("owner", "ref", name=op.f("uq_jurisdiction_criteria_owner_ref")),
    )
    with op.batch_alter_table("jurisdiction_criteria", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_jurisdiction_criteria_authority_id"), ["authority_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_jurisdiction_criteria_instrument"), ["instrument"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_jurisdiction_criteria_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_jurisdiction_criteria_revision"), ["revision"], unique=False
        )

    op.create_table(
        "national_correspondents",
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("authority_id", sa.Uuid(), nullable=True),
        sa.Column(
            "contact",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "person",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "languages",
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
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name=op.f("fk_national_correspondents_authority_id_authorities"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_national_correspondents")),
        sa.UniqueConstraint("owner", "ref", name=op.f("uq_national_correspondents_owner_ref")),
    )
    with op.batch_alter_table("national_correspondents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_national_correspondents_authority_id"), ["authority_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_national_correspondents_country"), ["country"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_national_correspondents_owner"), ["owner"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_national_correspondents_revision"), ["revision"], unique=False
        )

    op.create_table(
        "criterion_geo_keys",
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("scheme", sa.String(length=20), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["jurisdiction_criteria.id"],
            name=op.f("fk_criterion_geo_keys_entry_id_jurisdiction_criteria"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "entry_id", "country", "scheme", "code", name=op.f("pk_criterion_geo_keys")
        ),
    )
    with op.batch_alter_table("criterion_geo_keys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_criterion_geo_keys_lookup", ["country", "scheme", "code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("criterion_geo_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_criterion_geo_keys_lookup")

    op.drop_table("criterion_geo_keys")
    with op.batch_alter_table("national_correspondents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_national_correspondents_revision"))
        batch_op.drop_index(batch_op.f("ix_national_correspondents_owner"))
        batch_op.drop_index(batch_op.f("ix_national_correspondents_country"))
        batch_op.drop_index(batch_op.f("ix_national_correspondents_authority_id"))

    op.drop_table("national_correspondents")
    with op.batch_alter_table("jurisdiction_criteria", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jurisdiction_criteria_revision"))
        batch_op.drop_index(batch_op.f("ix_jurisdiction_criteria_owner"))
        batch_op.drop_index(batch_op.f("ix_jurisdiction_criteria_instrument"))
        batch_op.drop_index(batch_op.f("ix_jurisdiction_criteria_authority_id"))

    op.drop_table("jurisdiction_criteria")
    with op.batch_alter_table("routing_party_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_party_identifiers_entry_id"))

    op.drop_table("routing_party_identifiers")
    with op.batch_alter_table("national_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_national_members_routing_party_id"))
        batch_op.drop_index(batch_op.f("ix_national_members_revision"))
        batch_op.drop_index(batch_op.f("ix_national_members_owner"))
        batch_op.drop_index(batch_op.f("ix_national_members_country"))

    op.drop_table("national_members")
    with op.batch_alter_table("entry_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entry_versions_revision"))
        batch_op.drop_index("ix_entry_versions_kind_entry")

    op.drop_table("entry_versions")
    with op.batch_alter_table("authorities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authorities_routing_party_id"))
        batch_op.drop_index(batch_op.f("ix_authorities_revision"))
        batch_op.drop_index(batch_op.f("ix_authorities_parent_id"))
        batch_op.drop_index(batch_op.f("ix_authorities_owner"))

    op.drop_table("authorities")
    with op.batch_alter_table("routing_parties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_parties_revision"))
        batch_op.drop_index(batch_op.f("ix_routing_parties_owner"))

    op.drop_table("routing_parties")
    op.drop_table("revisions")
    op.drop_table("registry_head")
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maintenance_windows_starts_at"))
        batch_op.drop_index(batch_op.f("ix_maintenance_windows_revision"))
        batch_op.drop_index(batch_op.f("ix_maintenance_windows_owner"))

    op.drop_table("maintenance_windows")
    with op.batch_alter_table("gazetteer_places", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gazetteer_places_nuts3"))

    op.drop_table("gazetteer_places")
    op.drop_table("gazetteer_loads")
