"""stored files: photos and attachments in the file storage (storage keys)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Photos and attachments gain ``storage_key`` (and ``sha256``; photos a
``size``); ``content`` (nullable since 0001/0005) stays NULL for new files,
which go to the file storage (app/services/storage/), never into the database.

Existing blobs are NOT moved by this migration, on purpose:

- a migration is a schema change that must run the same everywhere, offline
  and quickly; copying every photo to S3 from inside it would tie
  ``flask db upgrade`` to the network and the storage credentials, hold one
  long transaction over all the blobs, and make a failure halfway leave
  objects that no row names;
- instead, reading falls back to ``content`` while ``storage_key`` is NULL,
  so nothing breaks after the upgrade, and ``flask storage migrate`` moves
  the blobs afterwards, in small committed batches, verifying each copy's
  size and SHA-256 before it clears ``content``. It can run while Muster
  runs, be stopped and started again (it picks up where it stopped), and
  ``flask storage migrate --into-database`` moves them back.

So that no file is lost, the downgrade refuses while any photo or attachment
lives only in the storage: run ``flask storage migrate --into-database``
first. ``import_uploads.samples`` keeps an upload's first rows, so the
mapping page does not fetch the whole file from S3 to show them.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('member_photos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_key', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('size', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))

    with op.batch_alter_table('event_attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_key', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))

    with op.batch_alter_table('import_uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('samples', sa.JSON(), nullable=True))


def downgrade():
    conn = op.get_bind()
    stranded = sum(conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE content IS NULL")).scalar() or 0
                   for table in ('member_photos', 'event_attachments'))
    if stranded:
        raise RuntimeError(
            f"{stranded} photos or attachments are kept only in the file storage; this version of the "
            "database cannot hold them. Run `flask storage migrate --into-database` first, then downgrade.")

    with op.batch_alter_table('import_uploads', schema=None) as batch_op:
        batch_op.drop_column('samples')

    with op.batch_alter_table('event_attachments', schema=None) as batch_op:
        batch_op.drop_column('sha256')
        batch_op.drop_column('storage_key')

    with op.batch_alter_table('member_photos', schema=None) as batch_op:
        batch_op.drop_column('sha256')
        batch_op.drop_column('size')
        batch_op.drop_column('storage_key')
