"""one-time links: mailed links to verify an email, reset or set a password

A new table only (app/models/links.py): each link's purpose, whom it
concerns, the SHA-256 of its nonce, its expiry and when it was used.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def upgrade():
    op.create_table(
        'one_time_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=40), nullable=False),
        sa.Column('nonce_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('member_id', sa.Integer(), nullable=True),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('created_at', _utc(), nullable=False),
        sa.Column('expires_at', _utc(), nullable=False),
        sa.Column('used_at', _utc(), nullable=True),
        sa.Column('superseded', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name='fk_one_time_links_user_id_users',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_one_time_links_member_id_members',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_one_time_links'),
        sa.UniqueConstraint('nonce_hash', name='uq_one_time_links_nonce_hash'),
    )
    op.create_index('ix_one_time_links_member_id', 'one_time_links', ['member_id'])
    op.create_index('ix_one_time_links_user_purpose', 'one_time_links', ['user_id', 'purpose'])


def downgrade():
    op.drop_table('one_time_links')
