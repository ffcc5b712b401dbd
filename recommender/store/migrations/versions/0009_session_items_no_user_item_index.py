"""session items: drop the (user_id, item_id) index

Revision ID: 0009
Revises: 0008

Whether a person was shown an item before is now kept per worker (recommender/shown.py),
brought up to date by a count of the person's sessions. The index answered it from the
database, but its entries for a person lie in item order, so every stored session wrote
about one of its pages per item: 12 of the 23 pages a session's commit wrote.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_session_items_user_item", table_name="session_items")


def downgrade() -> None:
    op.create_index("ix_session_items_user_item", "session_items", ["user_id", "item_id"])
