"""scheduler: leader lease and the record of every sweep run

Two new tables (app/models/scheduler.py): ``scheduler_runs``, one row per
sweep run (queued by the scheduler or run by `flask jobs run`, finished by
whoever ran it, with counts or the error), indexed by sweep and time so the
scheduler finds each sweep's last run on start; and ``scheduler_leases``, the
lock row whose lease elects the leading scheduler on SQLite (and names it on
PostgreSQL, where an advisory lock decides).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        'scheduler_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sweep', sa.String(length=60), nullable=False),
        sa.Column('triggered_by', sa.String(length=12), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('due_at', _utc(), nullable=False),
        sa.Column('queued_at', _utc(), nullable=False),
        sa.Column('started_at', _utc(), nullable=True),
        sa.Column('finished_at', _utc(), nullable=True),
        sa.Column('counts', sa.JSON(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('scheduled_by', sa.String(length=120), nullable=False),
        sa.Column('ran_by', sa.String(length=120), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_scheduler_runs'),
    )
    op.create_index('ix_scheduler_runs_sweep_queued', 'scheduler_runs', ['sweep', 'queued_at'])
    op.create_index('ix_scheduler_runs_queued_at', 'scheduler_runs', ['queued_at'])
    op.create_index('ix_scheduler_runs_status', 'scheduler_runs', ['status'])
    op.create_table(
        'scheduler_leases',
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('owner', sa.String(length=120), nullable=False),
        sa.Column('acquired_at', _utc(), nullable=False),
        sa.Column('expires_at', _utc(), nullable=False),
        sa.PrimaryKeyConstraint('name', name='pk_scheduler_leases'),
    )


def downgrade():
    op.drop_table('scheduler_leases')
    op.drop_index('ix_scheduler_runs_status', table_name='scheduler_runs')
    op.drop_index('ix_scheduler_runs_queued_at', table_name='scheduler_runs')
    op.drop_index('ix_scheduler_runs_sweep_queued', table_name='scheduler_runs')
    op.drop_table('scheduler_runs')
