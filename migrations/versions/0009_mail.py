"""outgoing mail: one row per message, its status and idempotency key

The outbox (app/models/mail.py): what was sent to whom, why a message failed
or was suppressed, and the lease a worker holds while it delivers one. A new
table only, so SQLite needs no batch rebuild of anything that exists.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        'mail_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=60), nullable=False),
        sa.Column('to_address', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body_text', sa.Text(), nullable=False),
        sa.Column('body_html', sa.Text(), nullable=False),
        sa.Column('message_id', sa.String(length=255), nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=False),
        sa.Column('bulk', sa.Boolean(), nullable=False),
        sa.Column('sensitive', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', _utc(), nullable=True),
        sa.Column('claimed_by', sa.String(length=64), nullable=True),
        sa.Column('claimed_until', _utc(), nullable=True),
        sa.Column('member_id', sa.Integer(), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('queued_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', _utc(), nullable=False),
        sa.Column('sent_at', _utc(), nullable=True),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_mail_messages_member_id_members',
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_mail_messages_user_id_users',
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['queued_by_id'], ['users.id'], name='fk_mail_messages_queued_by_id_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_mail_messages'),
        sa.UniqueConstraint('idempotency_key', name='uq_mail_messages_idempotency_key'),
    )
    op.create_index('ix_mail_messages_kind', 'mail_messages', ['kind'])
    op.create_index('ix_mail_messages_to_address', 'mail_messages', ['to_address'])
    op.create_index('ix_mail_messages_status', 'mail_messages', ['status'])
    op.create_index('ix_mail_messages_member_id', 'mail_messages', ['member_id'])
    op.create_index('ix_mail_messages_user_id', 'mail_messages', ['user_id'])
    op.create_index('ix_mail_messages_created_at', 'mail_messages', ['created_at'])
    op.create_index('ix_mail_messages_due', 'mail_messages', ['status', 'next_attempt_at'])


def downgrade():
    op.drop_table('mail_messages')  # its indexes go with it
