"""notifications: portal notifications and mail preferences

Two new tables (app/models/notifications.py): ``notifications`` (what the
portal bell counts, indexed on (member_id, read_at) so the count reads the
index only) and ``mail_preferences`` (a member's choice per optional kind;
no row means "mailed"). One nullable column on ``mail_messages``:
``list_unsubscribe``, the one-click link an optional notice is sent with
(its List-Unsubscribe headers). Nothing existing changes meaning.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=60), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('link', sa.String(length=500), nullable=True),
        sa.Column('read_at', _utc(), nullable=True),
        sa.Column('created_at', _utc(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_notifications_member_id_members',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_notifications'),
    )
    op.create_index('ix_notifications_member_unread', 'notifications', ['member_id', 'read_at'])
    op.create_index('ix_notifications_member_created', 'notifications', ['member_id', 'created_at'])
    op.create_table(
        'mail_preferences',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=60), nullable=False),
        sa.Column('email', sa.Boolean(), nullable=False),
        sa.Column('source', sa.String(length=30), nullable=False),
        sa.Column('updated_at', _utc(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_mail_preferences_member_id_members',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_mail_preferences'),
        sa.UniqueConstraint('member_id', 'kind', name='uq_mail_preferences_member_kind'),
    )
    with op.batch_alter_table('mail_messages') as batch:
        batch.add_column(sa.Column('list_unsubscribe', sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table('mail_messages') as batch:
        batch.drop_column('list_unsubscribe')
    op.drop_table('mail_preferences')
    op.drop_table('notifications')
