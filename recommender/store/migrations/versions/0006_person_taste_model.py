"""person taste model: each person's fitted Bayesian logistic taste (means and variances)

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
    with op.batch_alter_table("person_tastes") as batch:
        batch.add_column(sa.Column("model", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("person_tastes") as batch:
        batch.drop_column("model")
