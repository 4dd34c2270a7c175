"""Importing members from CSV and Excel files: read, map, validate in bulk, write in batches.

The flow, shared by the console (background jobs) and ``flask members import``:

1. ``inspect_file(path)`` finds how to read the file (``reading``).
2. ``guess_mapping(headers)`` maps columns to member fields from their names;
   people adjust it and may save it as a named ``ImportMapping`` (``mapping``).
3. ``Importer`` streams the rows in batches; each row is checked with the
   registry's own rules, each batch against the registry with one IN query
   per key and against the rows before it (``values``, ``validation``).
4. Writing is batch by batch through the member service's bulk functions
   (``services.members_bulk``), so an imported row obeys every rule a
   console or API change does, its card included (``writing``).
5. Console uploads wait under the instance folder, within a per-person quota
   (``uploads``); the preview and the import run as background jobs (``jobs``).

Modes: ``valid`` imports the valid rows and reports the others; ``all`` checks
every row first and writes nothing unless all are valid.

Scope: rows may only create members in units where the actor holds
members.create, and only change members where they hold members.update;
anything else is a row error. Memory stays flat with the file size.
"""

from app.services.imports.jobs import import_file, record_import, run_import_job, run_preview_job, start_import, \
    start_preview
from app.services.imports.mapping import FIELD_BY_KEY, FIELD_LABELS, FIELDS, ImportField, check_mapping, \
    guess_mapping, mapping_from_saved, save_mapping, saved_mappings, squash
from app.services.imports.reading import CSV_FIELD_LIMIT, DELIMITERS, FileInfo, ImportFileError, count_rows, \
    data_rows, detect_encoding, inspect_file, max_bytes, max_columns, sample_rows
from app.services.imports.uploads import cleanup_uploads, delete_upload_file, discard_upload, local_upload, \
    pending_uploads, save_upload, set_mapping, settings_for, upload_exists, upload_info, visible_uploads, work_dir
from app.services.imports.validation import COMPARED, KEY_LABELS, KINDS, MODES, ImportSettings
from app.services.imports.values import DATE_ORDERS, GENDER_WORDS, UnitResolver, looks_like_formula, parse_date, \
    split_full_name
from app.services.imports.writing import BAD_ROWS_KEPT, Importer, ImportResult, Progress

__all__ = [
    "BAD_ROWS_KEPT", "COMPARED", "CSV_FIELD_LIMIT", "DATE_ORDERS", "DELIMITERS", "FIELDS", "FIELD_BY_KEY",
    "FIELD_LABELS", "GENDER_WORDS", "KEY_LABELS", "KINDS", "MODES", "FileInfo", "ImportField", "ImportFileError",
    "ImportResult", "ImportSettings", "Importer", "Progress", "UnitResolver", "check_mapping", "cleanup_uploads",
    "count_rows", "data_rows", "delete_upload_file", "detect_encoding", "discard_upload", "guess_mapping", "local_upload",
    "import_file", "inspect_file", "looks_like_formula", "mapping_from_saved", "max_bytes", "max_columns",
    "parse_date", "pending_uploads", "record_import", "run_import_job", "run_preview_job", "sample_rows",
    "save_mapping", "save_upload", "saved_mappings", "set_mapping", "settings_for", "split_full_name",
    "squash", "start_import", "start_preview", "upload_exists", "upload_info", "work_dir",
    "visible_uploads",
]
