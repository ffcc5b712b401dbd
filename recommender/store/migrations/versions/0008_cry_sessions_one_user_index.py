"""cry sessions: drop the index on user_id alone

Revision ID: 0008
Revises: 0007

The (user_id, created_at) index starts with user_id, so it already finds a person's sessions
(and the rows a deleted person's cascade removes); the second index only cost a write per
stored session.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_cry_sessions_user_id", table_name="cry_sessions")


def downgrade() -> None:
    op.create_index("ix_cry_sessions_user_id", "cry_sessions", ["user_id"])
