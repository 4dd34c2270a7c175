"""accounts: what password resets, activation and sign-in by phone need (nothing: a no-op)

Password resets and activation links use the one_time_links table (0011 and the
"reset-password" / "activate" purposes); a login without a usable password is
one with an empty password_hash (the column's default); sign-in by phone finds
the user through members.phone, already indexed. So this revision changes no
schema; it stays to keep the chain 0012 -> 0013 -> 0014 of issue 11.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    pass  # no schema change (see the docstring)


def downgrade():
    pass
