"""Hostile workbooks against a real `cdb-service serve`: each is refused (413) or read
completely, while the worker's peak memory grows ≤ 64 MiB and an honest resolve beside
it keeps its p99 ≤ 250 ms (issue 30; `tests/support/hostile_watch.py`).

The workbooks are made here: a small ZIP of millions of empty rows, one cell or shared
strings that unpack to hundreds of megabytes, and an honest export whose `<dimension>`
claims fewer rows than the sheet has (replace mode must still see every row).
"""

from __future__ import annotations

import io
import os
import re
import ssl
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cdb_service.registry.formats.spreadsheets import XLSX_MEDIA_TYPE
from tests.support.hostile_watch import family, resolver, watch
from tests.support.service_process import Service, executable, running_service

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
SHEET = "xl/worksheets/sheet1.xml"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


@dataclass
class Dev:
    service: Service
    pki: Path

    def tls(self, client: str) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        context.load_cert_chain(self.pki / f"client-{client}.pem",
                                self.pki / f"client-{client}-key.pem")  # fmt: skip
        return context

    def post(self, body: bytes, query: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.service.dev_token('admin-de')}",
                   "Content-Type": XLSX_MEDIA_TYPE}  # fmt: skip
        with httpx.Client(verify=self.tls("admin-de"), timeout=300) as http:
            return http.post(f"{self.service.base_url}/api/v1/import?{query}", content=body,
                             headers=headers)  # fmt: skip

    def hostile(self, body: bytes, query: str, what: str) -> httpx.Response:
        token = self.service.dev_token("reader")
        client, resolve = resolver(self.service.base_url, self.tls("reader"),
                                   {"Authorization": f"Bearer {token}"})  # fmt: skip
        with client, watch(lambda: family(self.service.process.pid), resolve) as seen:
            answer = self.post(body, query)
        seen.check(f"{what} ({len(body) // 1024} KiB) -> {answer.status_code}")
        return answer


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    root = tmp_path_factory.mktemp("sheets")
    data = root / "var"
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(data)}
    for command in (["migrate"], ["seed"]):
        subprocess.run([executable(), *command], env=env, check=True, capture_output=True)
    with running_service(root, {}, ca=data / "pki" / "ca.pem") as service:
        yield Dev(service, data / "pki")


def _workbook(sheet: bytes | None = None, shared: bytes | None = None) -> bytes:
    """A minimal workbook with one sheet, `authorities`; `sheet` and `shared` are the
    parts' XML (unpacked size is what counts: they are deflated small)."""
    sheet = sheet or f'<worksheet xmlns="{MAIN}"><sheetData/></worksheet>'.encode()
    parts = {
        "[Content_Types].xml": b'<Types xmlns="http://schemas.openxmlformats.org/package/'
        b'2006/content-types"/>',
        "_rels/.rels": b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        b'relationships"><Relationship Id="r1" Type="http://schemas.openxmlformats.org/'
        b'officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        b"</Relationships>",
        "xl/workbook.xml": f'<workbook xmlns="{MAIN}" xmlns:r="http://schemas.openxmlformats'
        '.org/officeDocument/2006/relationships"><sheets><sheet name="authorities" '
        'sheetId="1" r:id="rId1"/></sheets></workbook>'.encode(),
        "xl/_rels/workbook.xml.rels": b'<Relationships xmlns="http://schemas.openxmlformats.'
        b'org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
        b'openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/'
        b'sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/'
        b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
        b"</Relationships>",
        SHEET: sheet,
    }
    if shared is not None:
        parts["xl/sharedStrings.xml"] = shared
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as book:
        for name, data in parts.items():
            book.writestr(name, data)
    return out.getvalue()


def _sheet(rows: bytes) -> bytes:
    return f'<worksheet xmlns="{MAIN}"><sheetData>'.encode() + rows + b"</sheetData></worksheet>"


def test_millions_of_empty_rows_in_a_small_workbook_are_refused_early(dev: Dev) -> None:
    body = _workbook(_sheet(b'<row r="1"><c t="inlineStr"><is><t>code</t></is></c></row>'
                            + b"<row/>" * 12_000_000))  # fmt: skip
    assert len(body) < 200 * 1024
    answer = dev.hostile(body, "dry_run=true", "12,000,000 empty rows")
    assert answer.status_code == 413, answer.text[:300]
    problem = answer.json()
    assert problem["type"].endswith("/content-too-large"), problem
    assert "rows" in problem["detail"], problem


def test_one_huge_cell_is_refused_before_it_is_held(dev: Dev) -> None:
    cell = b'<row r="1"><c t="inlineStr"><is><t>' + b"a" * (200 * MiB) + b"</t></is></c></row>"
    body = _workbook(_sheet(cell))
    assert len(body) < 1 * MiB
    answer = dev.hostile(body, "dry_run=true", "one 200 MiB cell")
    assert answer.status_code == 413, answer.text[:300]
    assert "cell" in answer.json()["detail"]


def test_a_huge_shared_string_is_refused_before_it_is_held(dev: Dev) -> None:
    shared = f'<sst xmlns="{MAIN}"><si><t>'.encode() + b"b" * (200 * MiB) + b"</t></si></sst>"
    rows = b'<row r="1"><c t="s"><v>0</v></c></row>'
    answer = dev.hostile(_workbook(_sheet(rows), shared), "dry_run=true",
                         "one 200 MiB shared string")  # fmt: skip
    assert answer.status_code == 413, answer.text[:300]
    assert "shared string" in answer.json()["detail"]


def test_many_shared_strings_past_their_budget_are_refused(dev: Dev) -> None:
    one = b"<si><t>" + b"c" * (MiB - 100) + b"</t></si>"
    shared = f'<sst xmlns="{MAIN}">'.encode() + one * 48 + b"</sst>"
    answer = dev.hostile(_workbook(None, shared), "dry_run=true", "48 shared strings of 1 MiB")
    assert answer.status_code == 413, answer.text[:300]
    assert "shared strings hold more than" in answer.json()["detail"]


def test_rows_beyond_the_sheets_dimension_are_read_and_replace_deletes_nothing(
    dev: Dev,
) -> None:
    headers = {"Authorization": f"Bearer {dev.service.dev_token('admin-de')}"}
    with httpx.Client(verify=dev.tls("admin-de"), timeout=60) as http:
        exported = http.get(f"{dev.service.base_url}/api/v1/export",
                            params={"owner": "DE", "format": "xlsx", "kind": "authorities"},
                            headers=headers)  # fmt: skip
    assert exported.status_code == 200
    source = zipfile.ZipFile(io.BytesIO(exported.content))
    part = next(n for n in source.namelist() if n.startswith("xl/worksheets/"))
    xml = source.read(part).decode()
    rows = xml.count("<row")
    assert rows >= 3, "the dev seed has several German authorities"
    # The sheet says it is the header and one row: the rest lie beyond its dimension.
    lying = '<dimension ref="A1:B2"/>'
    xml = (re.sub(r"<dimension [^>]*/>", lying, xml) if "<dimension" in xml
           else re.sub(r"(<worksheet[^>]*>)", r"\1" + lying, xml, count=1))  # fmt: skip
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for name in source.namelist():
            book.writestr(name, xml if name == part else source.read(name))
    answer = dev.hostile(out.getvalue(), "mode=replace&dry_run=true&owner=DE",
                         "rows beyond <dimension>, replace")  # fmt: skip
    assert answer.status_code == 200, answer.text[:300]
    result = answer.json()
    assert result["counts"].get("deleted", 0) == 0, result["counts"]
    assert result["counts"].get("unchanged", 0) == rows - 1, result
