"""session items: drop the index on session_id alone

Revision ID: 0007
Revises: 0006

The unique constraint on (session_id, position) is an index that starts with session_id,
so it already finds a session's items; the second index only cost a write per stored item.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_session_items_session_id", table_name="session_items")


def downgrade() -> None:
    op.create_index("ix_session_items_session_id", "session_items", ["session_id"])
