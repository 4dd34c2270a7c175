"""lifecycle: the rule that changed a card's or a member's status

Card grace needs no schema: "in grace" is derived from ``expires_on`` and
CARD_GRACE_DAYS (``MembershipCard.in_grace``), so it can never drift from
the dates. What is new is ``rule`` on ``card_transactions`` and
``member_status_changes``: the internal name of the status rule that made a
change nobody decided (``card.past_grace``, ``member.lapsed_after_grace``,
``member.renewed``; app/services/cards/lifecycle.py), NULL for a person's
action. Renewal reactivates only members lapsed by the rule (a member a
person marked lapsed stays so), which it finds by this column.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('card_transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule', sa.String(length=40), nullable=True))
    with op.batch_alter_table('member_status_changes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule', sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table('member_status_changes', schema=None) as batch_op:
        batch_op.drop_column('rule')
    with op.batch_alter_table('card_transactions', schema=None) as batch_op:
        batch_op.drop_column('rule')
