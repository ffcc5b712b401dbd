"""person blend: what each served item's score was made of, and each person's blend weights

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_items") as batch:
        batch.add_column(sa.Column("blend_inputs", sa.JSON(), nullable=True))
    with op.batch_alter_table("person_tastes") as batch:
        batch.add_column(sa.Column("blend", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("person_tastes") as batch:
        batch.drop_column("blend")
    with op.batch_alter_table("session_items") as batch:
        batch.drop_column("blend_inputs")
