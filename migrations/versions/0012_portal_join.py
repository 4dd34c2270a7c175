"""join: consent and email verification of members who join through the portal

Four nullable columns on members (app/models/people.py; the rules are in
app/services/joining.py): when the member proved their mailbox
(``email_verified_at``), when they consented to which privacy notice
(``consent_at``, ``consent_version``), and why staff turned an application
down (``rejection_reason``). Nullable, no default: SQLite adds them in place,
and existing members simply have no online application.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

COLUMNS = ('email_verified_at', 'consent_at', 'consent_version', 'rejection_reason')


def upgrade():
    op.add_column('members', sa.Column('email_verified_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('members', sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('members', sa.Column('consent_version', sa.String(length=20), nullable=True))
    op.add_column('members', sa.Column('rejection_reason', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('members', schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
