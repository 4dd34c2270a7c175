"""Refusing zip bombs: archives (DOCX, XLSX, ODT...) that unpack to far more than they weigh.

Office documents are zip archives. A small one can declare members that
expand to gigabytes, or hold hundreds of thousands of entries; whatever
opens it later (openpyxl reading an import, Word on a coordinator's laptop,
a future preview) pays for that. ``check_archive`` reads only the archive's
directory, never a member's data, and refuses it before anything else opens
it when:

- it has more than ``MAX_ENTRIES`` entries (counted from the end record and
  bounded by the directory's size before ``zipfile`` parses the directory,
  so a lying count cannot make the parse itself expensive);
- its members together declare more than ``max_unpacked`` bytes;
- a member larger than ``RATIO_GRACE_BYTES`` is compressed more than
  ``MAX_RATIO``-fold (real documents stay well under 100-fold; Apache POI
  uses the same bound).

Declared sizes are what ``zipfile`` (and so openpyxl) trusts: it never
returns more than a member's declared size, so checking them bounds the work.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from typing import IO

from app.services.errors import ServiceError

MAX_ENTRIES = 10_000
MAX_RATIO = 100
RATIO_GRACE_BYTES = 1024 * 1024  # small members may compress as well as they like
_DIRECTORY_BYTES_PER_ENTRY = 300  # fixed 46-byte record plus a generous name and extra field

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END_SIGNATURE = b"PK\x05\x06"
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"
_TAIL = _END.size + 0xFFFF  # the end record, then a comment of up to 64 KB


class ArchiveRefused(ServiceError):
    """The archive would unpack to too much; the message says why, for the person uploading it."""

    def __init__(self, message: str) -> None:
        super().__init__(message + " It may be a zip bomb, so it was refused.", field="file", status=422)


def _size_text(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:,.0f} KB"


def _directory_extent(fh: IO[bytes], length: int) -> tuple[int, int] | None:
    """(entries, directory bytes) from the end record (zip64 aware); None when there is none."""
    tail_start = max(0, length - _TAIL)
    fh.seek(tail_start)
    tail = fh.read()
    at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END.size:
        return None
    _sig, _disk, _cd_disk, _on_disk, entries, cd_size, _cd_offset, _comment = _END.unpack_from(tail, at)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # the real figures are in the zip64 end record
        locator_at = at - _END64_LOCATOR.size
        end64_at = locator_at - _END64.size
        if end64_at < 0 or tail[end64_at:end64_at + 4] != _END64_SIGNATURE:
            return entries, cd_size  # no readable zip64 record: the markers themselves are over the limits
        fields = _END64.unpack_from(tail, end64_at)
        entries, cd_size = fields[7], fields[8]
    return entries, cd_size


def check_archive(source: bytes | str | os.PathLike, *, max_unpacked: int, label: str = "file") -> None:
    """Raise ``ArchiveRefused`` when the zip archive ``source`` (bytes or a path) is a likely bomb.

    Not a zip archive, or one too damaged to have a directory: nothing to
    check here (``zipfile`` refuses it when opened, before unpacking anything).
    ``label`` names the file in messages ("Word document", "Excel workbook").
    """
    with (io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")) as fh:
        length = fh.seek(0, io.SEEK_END)
        extent = _directory_extent(fh, length)
        if extent is None:
            return
        entries, cd_size = extent
        if entries > MAX_ENTRIES:
            raise ArchiveRefused(f"This {label} holds {entries:,} parts ({MAX_ENTRIES:,} at most).")
        if cd_size > MAX_ENTRIES * _DIRECTORY_BYTES_PER_ENTRY:  # its count understates what is there
            raise ArchiveRefused(f"This {label} holds too many parts ({MAX_ENTRIES:,} at most).")
        fh.seek(0)
        try:
            with zipfile.ZipFile(fh) as archive:
                members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return
    if len(members) > MAX_ENTRIES:
        raise ArchiveRefused(f"This {label} holds {len(members):,} parts ({MAX_ENTRIES:,} at most).")
    total = sum(member.file_size for member in members)
    if total > max_unpacked:
        raise ArchiveRefused(f"This {label} would unpack to {_size_text(total)} ({_size_text(max_unpacked)} at most).")
    for member in members:
        if member.file_size > RATIO_GRACE_BYTES and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise ArchiveRefused(f"Part of this {label} ({member.filename[:80]}) is compressed "
                                 f"{member.file_size // max(member.compress_size, 1):,}-fold "
                                 f"({MAX_RATIO}-fold at most).")
