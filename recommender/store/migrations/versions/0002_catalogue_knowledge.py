"""catalogue knowledge: personal libraries, ISRCs, Spotify link and Last.fm caches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("isrc", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("shared", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.create_index(batch_op.f("ix_items_isrc"), ["isrc"], unique=False)
        batch_op.create_index(batch_op.f("ix_items_spotify_uri"), ["spotify_uri"], unique=False)

    op.create_table(
        "library_items",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_library_items_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_library_items_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "item_id", "source", name=op.f("pk_library_items")),
    )

    op.create_table(
        "spotify_lookups",
        sa.Column("item_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("spotify_uri", sa.String(length=100), nullable=True),
        sa.Column("isrc", sa.String(length=16), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_spotify_lookups_item_id_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_spotify_lookups")),
    )

    op.create_table(
        "lastfm_tags",
        sa.Column("key", sa.String(length=700), nullable=False),
        sa.Column("found", sa.Boolean(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_lastfm_tags")),
    )


def downgrade() -> None:
    op.drop_table("lastfm_tags")
    op.drop_table("spotify_lookups")
    op.drop_table("library_items")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_items_spotify_uri"))
        batch_op.drop_index(batch_op.f("ix_items_isrc"))
        batch_op.drop_column("shared")
        batch_op.drop_column("isrc")
