"""imports: uploaded files, saved column mappings, and the members.export permission

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-20

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('import_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_import_mappings_created_by_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_mappings')),
    sa.UniqueConstraint('created_by_id', 'name', name=op.f('uq_import_mappings_created_by_id_name'))
    )
    with op.batch_alter_table('import_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_mappings_created_by_id'), ['created_by_id'], unique=False)

    op.create_table('import_uploads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=200), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('encoding', sa.String(length=20), nullable=True),
    sa.Column('delimiter', sa.String(length=4), nullable=True),
    sa.Column('sheet', sa.String(length=100), nullable=True),
    sa.Column('header_line', sa.Integer(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=True),
    sa.Column('mapping', sa.JSON(), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('preview_job_id', sa.Integer(), nullable=True),
    sa.Column('import_job_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_import_uploads_created_by_id_users')),
    sa.ForeignKeyConstraint(['import_job_id'], ['jobs.id'], name=op.f('fk_import_uploads_import_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['preview_job_id'], ['jobs.id'], name=op.f('fk_import_uploads_preview_job_id_jobs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_uploads'))
    )
    with op.batch_alter_table('import_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_uploads_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_import_uploads_created_by_id'), ['created_by_id'], unique=False)

    _grant_export_permission()


def downgrade():
    _revoke_export_permission()
    with op.batch_alter_table('import_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_uploads_created_by_id'))
        batch_op.drop_index(batch_op.f('ix_import_uploads_created_at'))

    op.drop_table('import_uploads')
    with op.batch_alter_table('import_mappings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_mappings_created_by_id'))

    op.drop_table('import_mappings')


# Bulk export is its own permission (members.export). The catalogue is created at
# run time by rbac.ensure_catalogue(), which never changes existing roles; an
# existing database gets the permission here, granted to the system roles that
# read members in the console (admin, ward_coordinator), so exports keep working.
permissions = sa.table("permissions", sa.column("id", sa.Integer), sa.column("resource", sa.String),
                       sa.column("action", sa.String), sa.column("description", sa.String))
roles = sa.table("roles", sa.column("id", sa.Integer), sa.column("name", sa.String),
                 sa.column("is_system", sa.Boolean))
role_permissions = sa.table("role_permissions", sa.column("role_id", sa.Integer),
                            sa.column("permission_id", sa.Integer))


def _grant_export_permission():
    conn = op.get_bind()
    if conn.execute(sa.select(sa.func.count()).select_from(permissions)).scalar() == 0:
        return  # a new database: ensure_catalogue() creates everything, this included
    find = sa.select(permissions.c.id).where(permissions.c.resource == "members", permissions.c.action == "export")
    perm_id = conn.execute(find).scalar()
    if perm_id is None:
        conn.execute(permissions.insert().values(resource="members", action="export", description=""))
        perm_id = conn.execute(find).scalar()
    role_ids = conn.execute(sa.select(roles.c.id).where(roles.c.is_system.is_(True),
                                                        roles.c.name.in_(["admin", "ward_coordinator"]))).scalars()
    for role_id in role_ids:
        held = conn.execute(sa.select(role_permissions.c.role_id).where(
            role_permissions.c.role_id == role_id, role_permissions.c.permission_id == perm_id)).first()
        if held is None:
            conn.execute(role_permissions.insert().values(role_id=role_id, permission_id=perm_id))


def _revoke_export_permission():
    conn = op.get_bind()
    find = sa.select(permissions.c.id).where(permissions.c.resource == "members", permissions.c.action == "export")
    perm_id = conn.execute(find).scalar()
    if perm_id is not None:
        conn.execute(role_permissions.delete().where(role_permissions.c.permission_id == perm_id))
        conn.execute(permissions.delete().where(permissions.c.id == perm_id))
