"""profile change requests and erasure requests

Two new tables only (app/models/requests.py): what a member asked to change
in the fields they cannot edit themselves (with the values on record when
they asked), and their requests to have their account erased; both with who
decided and when, and at most one pending of each per member (partial unique
indexes, so two racing requests cannot both be pending).

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def _people(table):
    """The member the request concerns, and the logins that asked and decided."""
    return [
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=f'fk_{table}_member_id_members',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=f'fk_{table}_requested_by_id_users',
                                ondelete='SET NULL'),
    ]


def upgrade():
    op.create_table(
        'member_change_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('old_values', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', _utc(), nullable=False),
        sa.Column('decided_at', _utc(), nullable=True),
        *_people('member_change_requests'),
        sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name='fk_member_change_requests_decided_by_id_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_member_change_requests'),
    )
    op.create_index('ix_member_change_requests_member_status', 'member_change_requests', ['member_id', 'status'])
    op.create_index('ix_member_change_requests_status', 'member_change_requests', ['status'])
    op.create_index('uq_member_change_requests_one_pending', 'member_change_requests', ['member_id'], unique=True,
                    sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        'erasure_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('handled_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', _utc(), nullable=False),
        sa.Column('handled_at', _utc(), nullable=True),
        *_people('erasure_requests'),
        sa.ForeignKeyConstraint(['handled_by_id'], ['users.id'], name='fk_erasure_requests_handled_by_id_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_erasure_requests'),
    )
    op.create_index('ix_erasure_requests_member_status', 'erasure_requests', ['member_id', 'status'])
    op.create_index('ix_erasure_requests_status', 'erasure_requests', ['status'])
    op.create_index('uq_erasure_requests_one_pending', 'erasure_requests', ['member_id'], unique=True,
                    sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))


def downgrade():
    op.drop_table('erasure_requests')
    op.drop_table('member_change_requests')
