"""Many small PDFs written out as one, each as it comes, so memory stays flat for any number of pages.

pypdf reads each document and serializes its objects; this module only
decides the numbers and where things go. pypdf's own ``PdfWriter`` keeps
every page it is given until ``write()`` -- 10,000 cards is 20 MB of streams
and the Python objects around them, growing with the batch (figures in
docs/cards.md) -- while here a document is read, renumbered after the ones
before it, copied to the output and forgotten; only one file offset per
object stays in memory.

Everything reachable from a document's page tree is copied (pages, their
content streams, fonts, images, form XObjects); its catalog and info are
not. Each page tree becomes a kid of one new root.
"""

from __future__ import annotations

import io
from typing import IO

from pypdf import PdfReader
from pypdf.generic import (ArrayObject, DictionaryObject, IndirectObject, NameObject, NumberObject, PdfObject,
                           TextStringObject)


class PdfStreamWriter:
    """Appends the pages of PDF documents to ``handle``; ``finish()`` writes the page tree and trailer."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.out = handle
        self.pos = 0
        self.offsets: list[int] = []  # offsets[n - 1] is where object n starts
        self.kids: list[IndirectObject] = []
        self.pages = 0
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self.root = self._reserve()

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.pos += len(data)

    def _reserve(self) -> IndirectObject:
        self.offsets.append(-1)
        return IndirectObject(len(self.offsets), 0, None)

    def _write_object(self, ref: IndirectObject, obj: PdfObject) -> None:
        self.offsets[ref.idnum - 1] = self.pos
        buffer = io.BytesIO()
        buffer.write(b"%d 0 obj\n" % ref.idnum)
        obj.write_to_stream(buffer)
        buffer.write(b"\nendobj\n")
        self._write(buffer.getvalue())

    def add(self, pdf: bytes) -> None:
        """Copy the pages of one document (its objects renumbered after those already written)."""
        reader = PdfReader(io.BytesIO(pdf))
        tree = reader.trailer["/Root"].raw_get("/Pages")
        numbers: dict[int, IndirectObject] = {}
        queue: list[int] = []

        def renumbered(value: PdfObject) -> PdfObject:
            """``value`` with every reference pointing at its object's number in the output."""
            if isinstance(value, IndirectObject):
                if value.idnum not in numbers:
                    numbers[value.idnum] = self._reserve()
                    queue.append(value.idnum)
                return numbers[value.idnum]
            if isinstance(value, DictionaryObject):  # streams too: their data is copied as read
                for key, item in list(value.items()):
                    value[key] = renumbered(item)
            elif isinstance(value, ArrayObject):
                for i, item in enumerate(value):
                    value[i] = renumbered(item)
            return value

        renumbered(tree)
        while queue:
            number = queue.pop()
            obj = renumbered(reader.get_object(number))
            if number == tree.idnum:
                assert isinstance(obj, DictionaryObject)
                obj[NameObject("/Parent")] = self.root
                self.pages += int(obj["/Count"])
                self.kids.append(numbers[number])
            self._write_object(numbers[number], obj)

    def finish(self, title: str = "") -> None:
        """The root of the page tree, the catalog, the info and the cross-reference table."""
        self._write_object(self.root, DictionaryObject({
            NameObject("/Type"): NameObject("/Pages"),
            NameObject("/Kids"): ArrayObject(self.kids),
            NameObject("/Count"): NumberObject(self.pages),
        }))
        catalog = self._reserve()
        self._write_object(catalog, DictionaryObject({
            NameObject("/Type"): NameObject("/Catalog"), NameObject("/Pages"): self.root,
        }))
        info = self._reserve()
        self._write_object(info, DictionaryObject({
            NameObject("/Producer"): TextStringObject("Muster (ReportLab)"),
            NameObject("/Title"): TextStringObject(title),
        }))
        xref = self.pos
        rows = [b"xref\n0 %d\n" % (len(self.offsets) + 1), b"0000000000 65535 f \n"]
        rows += [b"%010d 00000 n \n" % offset for offset in self.offsets]
        self._write(b"".join(rows))
        trailer = DictionaryObject({
            NameObject("/Size"): NumberObject(len(self.offsets) + 1),
            NameObject("/Root"): catalog,
            NameObject("/Info"): info,
        })
        buffer = io.BytesIO()
        trailer.write_to_stream(buffer)
        self._write(b"trailer\n" + buffer.getvalue() + b"\nstartxref\n%d\n%%%%EOF\n" % xref)
