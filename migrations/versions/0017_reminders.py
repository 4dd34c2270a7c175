"""reminders: the sent log (one row per message, unique key) and reminder settings

Two new tables (app/models/reminders.py): ``reminder_log``, whose unique key
(member, kind, target) makes each reminder go out once, and
``reminder_settings``, the admins' overrides of the environment defaults.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        'reminder_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=40), nullable=False),
        sa.Column('card_id', sa.Integer(), nullable=True),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('offset_days', sa.Integer(), nullable=True),
        sa.Column('expires_on', sa.Date(), nullable=True),
        sa.Column('outcome', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('mail_message_id', sa.Integer(), nullable=True),
        sa.Column('created_at', _utc(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_reminder_log_member_id_members',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['card_id'], ['membership_cards.id'],
                                name='fk_reminder_log_card_id_membership_cards', ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name='fk_reminder_log_event_id_events',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['mail_message_id'], ['mail_messages.id'],
                                name='fk_reminder_log_mail_message_id_mail_messages', ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name='pk_reminder_log'),
        sa.UniqueConstraint('member_id', 'kind', 'target', name='uq_reminder_log_member_id_kind_target'),
    )
    op.create_index('ix_reminder_log_created_at', 'reminder_log', ['created_at'])
    op.create_index('ix_reminder_log_event_id', 'reminder_log', ['event_id'])
    op.create_table(
        'reminder_settings',
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('updated_at', _utc(), nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name='fk_reminder_settings_updated_by_id_users',
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('key', name='pk_reminder_settings'),
    )


def downgrade():
    op.drop_table('reminder_settings')
    op.drop_table('reminder_log')
