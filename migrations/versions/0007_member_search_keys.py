"""member search keys: members.first_name_key (+ live partial index); emails byte-ordered

A first name searched alone ("mwi" finds Mwila) is a prefix range on the
folded ``first_name_key``, like surnames on ``surname_key``, over the partial
index of live members. An email prefix ("ann.banda@") is a range on the
existing email index, which needs byte order: on PostgreSQL the column gets
the C collation (SQLite compares bytes already). Existing members get their
key here, batch by batch.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

"""
import unicodedata

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BATCH = 5000
LIVE = sa.text('deleted_at IS NULL')


def _fold(text):
    # app.models.base.fold as of this revision (a migration must not change when the app does).
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def upgrade():
    key_type = sa.String(length=80).with_variant(sa.String(length=80, collation='C'), 'postgresql')
    # NOT NULL with a default: SQLite adds the column in place instead of copying the table.
    op.add_column('members', sa.Column('first_name_key', key_type, nullable=False, server_default=''))
    members = sa.table('members', sa.column('id', sa.Integer), sa.column('first_name', sa.String),
                       sa.column('first_name_key', sa.String))
    conn = op.get_bind()
    last_id = 0
    while True:
        rows = conn.execute(sa.select(members.c.id, members.c.first_name).where(members.c.id > last_id)
                            .order_by(members.c.id).limit(BATCH)).all()
        if not rows:
            break
        conn.execute(members.update().where(members.c.id == sa.bindparam('_id'))
                     .values(first_name_key=sa.bindparam('_key')),
                     [{'_id': row.id, '_key': _fold(row.first_name)} for row in rows])
        last_id = rows[-1].id
    op.create_index('ix_members_first_name_key', 'members', ['first_name_key', 'id'], unique=False,
                    sqlite_where=LIVE, postgresql_where=LIVE)
    if conn.dialect.name == 'postgresql':
        op.alter_column('members', 'email', type_=sa.String(length=254, collation='C'),
                        existing_type=sa.String(length=254), existing_nullable=True)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('members', 'email', type_=sa.String(length=254),
                        existing_type=sa.String(length=254, collation='C'), existing_nullable=True)
    op.drop_index('ix_members_first_name_key', table_name='members', sqlite_where=LIVE, postgresql_where=LIVE)
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('first_name_key')
