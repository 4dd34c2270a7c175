"""Write the import test files in this folder: `python tests/data/make_files.py`.

The same ten people in several encodings, delimiters and formats (the way
spreadsheets arrive from wards), plus malformed files. The files are
committed too; this script documents how they were made and rebuilds them.
The wards are those of the ``tree`` fixture (codes W1..W4, names
"Lukashya Ward 1"...).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = ["Surname", "First Name", "ID No", "Cell", "E-mail", "Sex", "Date of Birth", "Ward", "Date Joined", "Tags"]
# Ten valid people, written the way people type them: local phone numbers, several date
# formats, wards by code, name or path.
PEOPLE = [
    ["Banda", "Chileshe", "100001/11/1", "0977 100 001", "chileshe.banda@example.org", "F", "25/04/1990", "W1",
     "01/02/2020", "youth"],
    ["Mwale", "Joseph", "100002/11/1", "0966100002", "", "M", "1985-11-03", "W1", "2019-06-30", ""],
    ["Müller", "Zoë", "100003/11/1", "+260 955 100 003", "ZOE.MULLER@EXAMPLE.ORG", "female", "3 March 1992",
     "Lukashya Ward 1", "15 Jan 2021", "youth, volunteer"],
    ["Phiri", "Mercy", "100004/11/1", "0977100004", "mercy@example.org", "F", "07.08.1979",
     "Northern / Kasama / Lukashya / Lukashya Ward 2", "", ""],
    ["Tembo", "Brian", "100005/11/1", "0977-100-005", "", "male", "12/12/2001", "W2", "2022-03-01", "volunteer"],
    ["Zulu", "Agnes", "100006/11/1", "0977100006", "agnes.zulu@example.org", "F", "31/01/1968", "W1", "", ""],
    ["Ngoma", "Peter", "100007/11/1", "0977100007", "", "M", "1999-09-09", "W2", "", ""],
    ["Lungu", "Grace", "100008/11/1", "0977100008", "grace.lungu@example.org", "F", "20/10/1995", "W1", "", ""],
    ["Sakala", "Daniel", "100009/11/1", "0977100009", "", "M", "01/01/1980", "W1", "", ""],
    ["Chanda", "Ruth", "100010/11/1", "0977100010", "", "F", "14/02/1988", "W2", "", "choir"],
]


def write_csv(name: str, rows: list[list], *, encoding: str, delimiter: str = ",", bom: bool = False) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    data = buffer.getvalue().encode(encoding)
    if bom and encoding == "utf-8":
        data = b"\xef\xbb\xbf" + data
    (HERE / name).write_bytes(data)


def write_xlsx() -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Members"
    ws.append(["Membership list, Northern province"])  # a title row above the header
    ws.append([])
    ws.append(HEADER)
    for person in PEOPLE:
        row = list(person)
        row[3] = int("".join(ch for ch in row[3] if ch.isdigit())[-9:])  # phone typed as a number: no leading 0
        row[6] = datetime.strptime(row[6], "%d/%m/%Y") if "/" in row[6] else row[6]  # real date cells
        if row[8] == "2019-06-30":
            row[8] = 43646  # an Excel serial day number (2019-06-30) in a general-format cell
        ws.append(row)
    ws.append([])  # a blank row in the middle is skipped
    wb.save(HERE / "members.xlsx")


def main() -> None:
    rows = [HEADER] + PEOPLE
    write_csv("members_utf8.csv", rows, encoding="utf-8")
    write_csv("members_utf8_bom_semicolon.csv", rows, encoding="utf-8", delimiter=";", bom=True)
    # UTF-16 with BOM, tab-separated: what Excel's "Unicode text" writes.
    write_csv("members_utf16_tab.csv", rows, encoding="utf-16", delimiter="\t")
    write_csv("members_cp1252_pipe.csv", rows, encoding="cp1252", delimiter="|")
    write_xlsx()

    # Five good rows and five bad ones (line numbers in the comments).
    bad = [HEADER] + PEOPLE[:3] + [
        ["Kunda", "", "200001/11/1", "0977200001", "", "F", "", "W1", "", ""],  # 5: no first name
        ["Kabwe", "Moses", "200002/11/1", "12345", "", "M", "", "W1", "", ""],  # 6: bad phone
        ["Daka", "Esther", "200003/11/1", "0977200003", "not-an-email", "F", "31/02/1990", "W1", "", ""],  # 7
        ["Mumba", "John", "100001/11/1", "0977200004", "", "M", "", "W1", "", ""],  # 8: same ID as line 2
        ["Bwalya", "Ann", "200005/11/1", "0977200005", "", "F", "", "NOWHERE", "", ""],  # 9: unknown ward
        ["=cmd|' /C calc'!A0", "Eve", "200006/11/1", "0977200006", "", "F", "", "W1", "", ""],  # 10: formula
    ] + PEOPLE[3:5]
    write_csv("members_bad_rows.csv", bad, encoding="utf-8")

    # Rows for a ward the coordinator of W1 does not look after (W3, W4).
    write_csv("members_other_wards.csv",
              [HEADER, PEOPLE[0], ["Outsider", "Olive", "300001/11/1", "0977300001", "", "F", "", "W4", "", ""],
               ["Faraway", "Fred", "300002/11/1", "0977300002", "", "M", "", "W3", "", ""]],
              encoding="utf-8")

    (HERE / "empty.csv").write_bytes(b"")
    (HERE / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (HERE / "nul_bytes.csv").write_bytes(b"Surname,First name\n" + b"\x00\x01\x02\x03" * 200)
    write_csv("no_header.csv", PEOPLE, encoding="utf-8")
    write_csv("wide_header.csv", [[f"Column {i}" for i in range(10_000)], ["x"] * 10_000], encoding="utf-8")
    write_csv("wide_row.csv", [HEADER, PEOPLE[0], PEOPLE[1] + ["x"] * 9_990], encoding="utf-8")
    (HERE / "old_excel.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1024)
    (HERE / "not_excel.xlsx").write_bytes(b"PK\x03\x04" + b"\x00" * 200)


if __name__ == "__main__":
    main()
