"""membership cards and card transactions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-20

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('membership_cards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('card_number', sa.String(length=32), nullable=False),
    sa.Column('card_type', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('issued_by_id', sa.Integer(), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('renewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replaces_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['issued_by_id'], ['users.id'], name=op.f('fk_membership_cards_issued_by_id_users')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_membership_cards_member_id_members')),
    sa.ForeignKeyConstraint(['replaces_id'], ['membership_cards.id'], name=op.f('fk_membership_cards_replaces_id_membership_cards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_cards')),
    sa.UniqueConstraint('card_number', name=op.f('uq_membership_cards_card_number'))
    )
    with op.batch_alter_table('membership_cards', schema=None) as batch_op:
        batch_op.create_index('ix_membership_cards_expires_on', ['expires_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_cards_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_cards_status'), ['status'], unique=False)
        batch_op.create_index('uq_membership_cards_current_member', ['member_id'], unique=True, sqlite_where=sa.text("status IN ('active', 'suspended')"), postgresql_where=sa.text("status IN ('active', 'suspended')"))

    op.create_table('card_transactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=12), nullable=False),
    sa.Column('from_status', sa.String(length=12), nullable=True),
    sa.Column('to_status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_card_transactions_actor_id_users')),
    sa.ForeignKeyConstraint(['card_id'], ['membership_cards.id'], name=op.f('fk_card_transactions_card_id_membership_cards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_card_transactions'))
    )
    with op.batch_alter_table('card_transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_card_transactions_card_id'), ['card_id'], unique=False)



def downgrade():
    with op.batch_alter_table('card_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_card_transactions_card_id'))

    op.drop_table('card_transactions')
    with op.batch_alter_table('membership_cards', schema=None) as batch_op:
        batch_op.drop_index('uq_membership_cards_current_member', sqlite_where=sa.text("status IN ('active', 'suspended')"), postgresql_where=sa.text("status IN ('active', 'suspended')"))
        batch_op.drop_index(batch_op.f('ix_membership_cards_status'))
        batch_op.drop_index(batch_op.f('ix_membership_cards_member_id'))
        batch_op.drop_index('ix_membership_cards_expires_on')

    op.drop_table('membership_cards')
