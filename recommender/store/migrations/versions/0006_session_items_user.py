"""session items carry their person: "was this shown to them before?" is one index probe

Revision ID: 0006
Revises: 0005

Whether a person was shown an item before used to be a join from their sessions to those
sessions' items, which grows with every session they ever had; the person's id on each
session item, indexed with the item, answers it directly.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_items") as batch:
        batch.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE session_items SET user_id = "
        "(SELECT cry_sessions.user_id FROM cry_sessions "
        "WHERE cry_sessions.id = session_items.session_id)"
    )
    op.create_index("ix_session_items_user_item", "session_items", ["user_id", "item_id"])


def downgrade() -> None:
    op.drop_index("ix_session_items_user_item", table_name="session_items")
    with op.batch_alter_table("session_items") as batch:
        batch.drop_column("user_id")
