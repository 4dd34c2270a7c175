"""Zip bombs are refused before anything opens them: event attachments and member imports (issue 8).

The bombs are generated: a Word document and an Excel workbook each carrying
a part that unpacks to 200 MB of zeros (under 1 MB on disk), archives with
thousands of parts, and zip64 end records whose counts are checked too.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from datetime import timedelta

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from app.extensions import db
from app.models.events import EventAttachment
from app.models.base import utcnow
from app.services import events as event_service
from app.services import imports as import_service
from app.services import storage
from app.services import zipguard
from app.services.errors import ServiceError
from tests.conftest import csrf_token_from, login

MB = 1024 * 1024


def _zeros(archive: zipfile.ZipFile, name: str, megabytes: int) -> None:
    """A part of ``megabytes`` MB of zeros, streamed in (compression level 1: ~230-fold)."""
    with archive.open(name, "w") as part:
        chunk = bytes(MB)
        for _ in range(megabytes):
            part.write(chunk)


def _docx(bomb_mb: int = 0, extra_parts: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        for i in range(extra_parts):
            archive.writestr(f"word/media/p{i}.xml", "")
        if bomb_mb:
            _zeros(archive, "word/media/image1.png", bomb_mb)
    return buf.getvalue()


def _xlsx(bomb_mb: int = 0) -> bytes:
    wb = Workbook()
    wb.active.append(["first_name", "last_name", "phone"])
    wb.active.append(["Ada", "Banda", "0977123456"])
    buf = io.BytesIO()
    wb.save(buf)
    if bomb_mb:
        with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            _zeros(archive, "xl/media/image1.png", bomb_mb)
    return buf.getvalue()


def _with_zip64_end(raw: bytes, entries: int) -> bytes:
    """The archive with its end record moved to zip64 form, declaring ``entries`` entries."""
    at = raw.rfind(b"PK\x05\x06")
    _sig, _d, _cd, _n, _total, cd_size, cd_offset, _c = struct.unpack_from("<4s4H2LH", raw, at)
    body = raw[:at]
    end64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(body), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + end64 + locator + end


@pytest.fixture()
def event(tree):
    return event_service.create_event(None, {
        "title": "Rally", "start_at": utcnow() + timedelta(days=3), "end_at": utcnow() + timedelta(days=3, hours=2),
        "unit_id": tree["w1"].id})


# --- the guard itself -------------------------------------------------------------------


def test_ordinary_archives_and_other_files_pass(app):
    zipguard.check_archive(_docx(), max_unpacked=MB)
    zipguard.check_archive(_xlsx(), max_unpacked=MB)
    zipguard.check_archive(b"%PDF-1.4 not a zip", max_unpacked=MB)
    zipguard.check_archive(b"PK\x03\x04 damaged, no directory", max_unpacked=MB)


def test_a_highly_compressed_part_is_refused_even_under_the_total():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("random.bin", os.urandom(2 * MB))  # incompressible: fine
    zipguard.check_archive(buf.getvalue(), max_unpacked=100 * MB)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as archive:
        _zeros(archive, "zeros.bin", 2)
    with pytest.raises(zipguard.ArchiveRefused, match=r"\(zeros.bin\) is compressed [\d,]+-fold \(100-fold at most\)"):
        zipguard.check_archive(buf.getvalue(), max_unpacked=100 * MB)


def test_zip64_end_records_are_read():
    small = _docx()
    zipguard.check_archive(_with_zip64_end(small, 2), max_unpacked=MB)
    assert zipfile.ZipFile(io.BytesIO(_with_zip64_end(small, 2))).namelist()  # a well-formed zip64 archive
    with pytest.raises(zipguard.ArchiveRefused, match=r"holds 50,000 parts \(10,000 at most\)"):
        zipguard.check_archive(_with_zip64_end(small, 50_000), max_unpacked=MB)


def test_an_end_record_understating_the_parts_is_caught():
    many = _docx(extra_parts=12_000)
    at = many.rfind(b"PK\x05\x06")
    lying = many[:at + 8] + struct.pack("<2H", 3, 3) + many[at + 12:]  # "3 entries"
    with pytest.raises(zipguard.ArchiveRefused, match=r"holds 12,002 parts \(10,000 at most\)"):
        zipguard.check_archive(lying, max_unpacked=100 * MB)


# --- event attachments ------------------------------------------------------------------


def test_docx_bomb_attachment_is_refused(app, event):
    bomb = _docx(bomb_mb=200)
    assert len(bomb) < MB
    with pytest.raises(ServiceError) as refused:
        event_service.add_attachment(None, event, "agenda.docx", bomb)
    assert refused.value.field == "file"
    assert refused.value.message == ("This file would unpack to 200 MB (100 MB at most). "
                                     "It may be a zip bomb, so it was refused.")


def test_attachment_with_thousands_of_parts_is_refused(app, event):
    with pytest.raises(ServiceError, match=r"holds 10,003 parts \(10,000 at most\)"):
        event_service.add_attachment(None, event, "agenda.docx", _docx(extra_parts=10_001))


def test_console_shows_why_an_attachment_bomb_was_refused(client, staff, event):
    db.session.commit()
    login(client, "coord@test.org")
    page = client.get(f"/admin/events/{event.id}/").get_data(as_text=True)
    response = client.post(f"/admin/events/{event.id}/attachments", follow_redirects=True, data={
        "csrf_token": csrf_token_from(page), "kind": "agenda",
        "file": (io.BytesIO(_docx(bomb_mb=200)), "agenda.docx")})
    assert response.status_code == 200
    assert "It may be a zip bomb, so it was refused." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(EventAttachment)) == 0


# --- member imports ---------------------------------------------------------------------


def test_xlsx_bomb_import_is_refused(app, staff):
    bomb = _xlsx(bomb_mb=200)
    assert len(bomb) < MB
    with pytest.raises(ServiceError, match=r"Part of this workbook \(xl/media/image1.png\) is compressed "
                                           r"[\d,]+-fold \(100-fold at most\)\. It may be a zip bomb"):
        import_service.save_upload(staff["super_admin"], io.BytesIO(bomb), "members.xlsx")


def test_xlsx_unpacking_beyond_the_setting_is_refused(app, staff, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_MAX_UNPACKED_BYTES", 4 * 1024)
    with pytest.raises(ServiceError, match=r"This workbook would unpack to \d+ KB \(4 KB at most\)"):
        import_service.save_upload(staff["super_admin"], io.BytesIO(_xlsx()), "members.xlsx")


def test_an_ordinary_workbook_still_imports(app, staff):
    upload = import_service.save_upload(staff["super_admin"], io.BytesIO(_xlsx()), "members.xlsx")
    try:
        assert upload.format == "xlsx" and upload.headers[:2] == ["first_name", "last_name"]
    finally:
        storage.delete(upload.stored_name)
