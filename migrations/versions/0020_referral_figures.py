"""referral figures: covering indexes on referrals, deleted members by index (issue 13)

The organisation's referral figures (app/services/referrals/stats.py) are
taken over every referral and ledger entry from indexes alone, less the share
of deleted members:

- ``ix_referrals_status_funnel`` (status, created_at, registered_at,
  credited_at) replaces ``ix_referrals_status_created``: the expiry sweep's
  range is its prefix, and the funnel's counts by status read it alone;
- ``ix_referrals_referrer_funnel`` (referrer_id, status, registered_at,
  credited_at) replaces ``ix_referrals_referrer_status``: a member's
  referrals, and every count grouped by referrer, without table rows;
- ``ix_members_deleted_id`` (id, partial: deleted members only): the few
  deleted members found without a scan of the members table.

Indexes only: no table is rebuilt on SQLite.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_referrals_status_funnel', 'referrals',
                    ['status', 'created_at', 'registered_at', 'credited_at'])
    op.drop_index('ix_referrals_status_created', table_name='referrals')
    op.create_index('ix_referrals_referrer_funnel', 'referrals',
                    ['referrer_id', 'status', 'registered_at', 'credited_at'])
    op.drop_index('ix_referrals_referrer_status', table_name='referrals')
    op.create_index('ix_members_deleted_id', 'members', ['id'],
                    sqlite_where=sa.text('deleted_at IS NOT NULL'),
                    postgresql_where=sa.text('deleted_at IS NOT NULL'))


def downgrade():
    op.drop_index('ix_members_deleted_id', table_name='members')
    op.create_index('ix_referrals_referrer_status', 'referrals', ['referrer_id', 'status'])
    op.drop_index('ix_referrals_referrer_funnel', table_name='referrals')
    op.create_index('ix_referrals_status_created', 'referrals', ['status', 'created_at'])
    op.drop_index('ix_referrals_status_funnel', table_name='referrals')
