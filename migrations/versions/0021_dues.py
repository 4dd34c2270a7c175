"""dues: membership tiers, payments, handled Stripe events; the payments.* permissions (issue 14)

Three new tables (app/models/dues.py): ``membership_tiers``, ``payments``
(one row per payment, online or recorded by staff; ``fulfilled_at`` set once
when it extends the membership), ``stripe_events`` (the id of every Stripe
event handled, written with its effect). And three permissions:
``payments.read``, ``payments.create``, ``payments.refund``; on an existing
database they are granted here to the system roles (admin: all three;
ward_coordinator: read and create), as ``rbac.ensure_catalogue`` never
changes existing roles.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


GRANTS = {"admin": ("read", "create", "refund"), "ward_coordinator": ("read", "create")}


def upgrade():
    op.create_table(
        'membership_tiers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.Column('price_minor', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('duration_months', sa.Integer(), nullable=True),
        sa.Column('card_type', sa.String(length=12), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', _utc(), nullable=False),
        sa.Column('updated_at', _utc(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_membership_tiers'),
        sa.UniqueConstraint('name', name='uq_membership_tiers_name'),
    )
    op.create_table(
        'payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('tier_id', sa.Integer(), nullable=False),
        sa.Column('unit_id', sa.Integer(), nullable=False),
        sa.Column('amount_minor', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('reference', sa.String(length=120), nullable=False),
        sa.Column('stripe_session_id', sa.String(length=255), nullable=True),
        sa.Column('stripe_payment_intent_id', sa.String(length=255), nullable=True),
        sa.Column('receipt_number', sa.String(length=24), nullable=True),
        sa.Column('recorded_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', _utc(), nullable=False),
        sa.Column('updated_at', _utc(), nullable=False),
        sa.Column('completed_at', _utc(), nullable=True),
        sa.Column('fulfilled_at', _utc(), nullable=True),
        sa.Column('refunded_at', _utc(), nullable=True),
        sa.Column('extended_from', sa.Date(), nullable=True),
        sa.Column('extended_to', sa.Date(), nullable=True),
        sa.Column('card_id', sa.Integer(), nullable=True),
        sa.Column('hold_reason', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name='fk_payments_member_id_members'),
        sa.ForeignKeyConstraint(['tier_id'], ['membership_tiers.id'], name='fk_payments_tier_id_membership_tiers'),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name='fk_payments_unit_id_units'),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name='fk_payments_recorded_by_id_users'),
        sa.ForeignKeyConstraint(['card_id'], ['membership_cards.id'], name='fk_payments_card_id_membership_cards'),
        sa.PrimaryKeyConstraint('id', name='pk_payments'),
        sa.UniqueConstraint('stripe_session_id', name='uq_payments_stripe_session_id'),
        sa.UniqueConstraint('receipt_number', name='uq_payments_receipt_number'),
    )
    op.create_index('ix_payments_member_created', 'payments', ['member_id', 'created_at'])
    op.create_index('ix_payments_status_completed', 'payments', ['status', 'completed_at', 'unit_id'])
    op.create_index('ix_payments_stripe_payment_intent_id', 'payments', ['stripe_payment_intent_id'])
    op.create_table(
        'stripe_events',
        sa.Column('id', sa.String(length=255), nullable=False),
        sa.Column('type', sa.String(length=80), nullable=False),
        sa.Column('payment_id', sa.Integer(), nullable=True),
        sa.Column('received_at', _utc(), nullable=False),
        sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name='fk_stripe_events_payment_id_payments'),
        sa.PrimaryKeyConstraint('id', name='pk_stripe_events'),
    )
    _grant_permissions()


def downgrade():
    _revoke_permissions()
    op.drop_table('stripe_events')
    op.drop_table('payments')
    op.drop_table('membership_tiers')


permissions = sa.table("permissions", sa.column("id", sa.Integer), sa.column("resource", sa.String),
                       sa.column("action", sa.String), sa.column("description", sa.String))
roles = sa.table("roles", sa.column("id", sa.Integer), sa.column("name", sa.String),
                 sa.column("is_system", sa.Boolean))
role_permissions = sa.table("role_permissions", sa.column("role_id", sa.Integer),
                            sa.column("permission_id", sa.Integer))


def _permission_id(conn, action):
    find = sa.select(permissions.c.id).where(permissions.c.resource == "payments", permissions.c.action == action)
    perm_id = conn.execute(find).scalar()
    if perm_id is None:
        conn.execute(permissions.insert().values(resource="payments", action=action, description=""))
        perm_id = conn.execute(find).scalar()
    return perm_id


def _grant_permissions():
    conn = op.get_bind()
    if conn.execute(sa.select(sa.func.count()).select_from(permissions)).scalar() == 0:
        return  # a new database: ensure_catalogue() creates everything, these included
    for role_name, actions in GRANTS.items():
        role_id = conn.execute(sa.select(roles.c.id).where(roles.c.is_system.is_(True),
                                                           roles.c.name == role_name)).scalar()
        for action in actions:
            perm_id = _permission_id(conn, action)
            if role_id is None:
                continue
            held = conn.execute(sa.select(role_permissions.c.role_id).where(
                role_permissions.c.role_id == role_id, role_permissions.c.permission_id == perm_id)).first()
            if held is None:
                conn.execute(role_permissions.insert().values(role_id=role_id, permission_id=perm_id))


def _revoke_permissions():
    conn = op.get_bind()
    ids = conn.execute(sa.select(permissions.c.id).where(permissions.c.resource == "payments")).scalars().all()
    if ids:
        conn.execute(role_permissions.delete().where(role_permissions.c.permission_id.in_(ids)))
        conn.execute(permissions.delete().where(permissions.c.id.in_(ids)))
