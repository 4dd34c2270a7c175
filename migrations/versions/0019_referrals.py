"""referrals: referral codes, referrals and the points ledger (issue 13)

Three new tables (app/models/referrals.py): ``referral_codes`` (one short
code per member, created lazily), ``referrals`` (who brought whom; a unique
``referred_member_id`` so a new member has one referrer at most) and
``referral_rewards`` (the points ledger: awards and reversals, a balance is
their sum). Nothing existing changes: no column is added to ``members``, so
no table is rebuilt on SQLite.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def _bytewise(length):
    return sa.String(length=length).with_variant(sa.String(length=length, collation='C'), 'postgresql')


def upgrade():
    op.create_table(
        'referral_codes',
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=16), nullable=False),
        sa.Column('created_at', _utc(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_referral_codes_member_id_members',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('member_id', name='pk_referral_codes'),
        sa.UniqueConstraint('code', name='uq_referral_codes_code'),
    )
    op.create_table(
        'referrals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('referrer_id', sa.Integer(), nullable=False),
        sa.Column('referred_member_id', sa.Integer(), nullable=True),
        sa.Column('prospect_name', sa.String(length=160), nullable=True),
        sa.Column('prospect_phone', sa.String(length=20), nullable=True),
        sa.Column('prospect_email', _bytewise(254), nullable=True),
        sa.Column('code', sa.String(length=16), nullable=True),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('created_at', _utc(), nullable=False),
        sa.Column('registered_at', _utc(), nullable=True),
        sa.Column('credited_at', _utc(), nullable=True),
        sa.Column('closed_at', _utc(), nullable=True),
        sa.Column('updated_at', _utc(), nullable=False),
        sa.ForeignKeyConstraint(['referrer_id'], ['members.id'], name='fk_referrals_referrer_id_members',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['referred_member_id'], ['members.id'],
                                name='fk_referrals_referred_member_id_members', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_referrals'),
        sa.UniqueConstraint('referred_member_id', name='uq_referrals_referred_member_id'),
    )
    op.create_index('ix_referrals_status_created', 'referrals', ['status', 'created_at'])
    op.create_index('ix_referrals_referrer_status', 'referrals', ['referrer_id', 'status'])
    op.create_index('ix_referrals_prospect_phone', 'referrals', ['prospect_phone'])
    op.create_index('ix_referrals_prospect_email', 'referrals', ['prospect_email'])
    op.create_table(
        'referral_rewards',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('referral_id', sa.Integer(), nullable=True),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('created_at', _utc(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_referral_rewards_member_id_members',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'],
                                name='fk_referral_rewards_referral_id_referrals', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name='fk_referral_rewards_actor_id_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_referral_rewards'),
        sa.UniqueConstraint('referral_id', 'kind', name='uq_referral_rewards_referral_kind'),
    )
    op.create_index('ix_referral_rewards_member_points', 'referral_rewards', ['member_id', 'points'])


def downgrade():
    op.drop_table('referral_rewards')
    op.drop_table('referrals')
    op.drop_table('referral_codes')
