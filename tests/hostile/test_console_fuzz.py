"""The console, fuzzed: no query parameter or form field a signed-in user can send gets a
5xx (issue 30: "zero 5xx from any client input", the console too).

A real dev service, a console session signed in through the dev issuer, its CSRF token on
every form; hypothesis chooses the pages, the parameters and the fields (text of any
kind: dates of year 1 and 9999, page marks, NUL, huge numbers). The maintenance-notice
check and a bad `after=` were 500s (or minutes of work) before: they are named first.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdb_service.registry.kinds import KINDS
from tests.console.support import csrf_of, sign_in_http
from tests.support.service_process import Service, executable, running_service

pytestmark = pytest.mark.slow

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console-fuzz")
    data = root / "var"
    env = {"PATH": os.environ["PATH"], "CDB_DATA_DIR": str(data)}
    for command in (["migrate"], ["seed"]):
        subprocess.run([executable(), *command], env=env, check=True, capture_output=True)
    with running_service(root, {"CDB_RATE_LIMIT_PER_CLIENT": "100000"},
                         ca=data / "pki" / "ca.pem") as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def console(service: Service) -> Iterator[httpx.Client]:
    with sign_in_http(service, "admin-de") as http:
        yield http


def _fine(answer: httpx.Response, what: Any) -> None:
    assert answer.status_code < 500, (what, answer.status_code, answer.text[:300])


def test_a_bad_page_mark_is_422_naming_after(console: httpx.Client) -> None:
    for sort in ("-updated_at", "updated_at", "code"):
        mark = f"{uuid.uuid4()}|not a date"
        answer = console.get("/console/authorities", params={"sort": sort, "after": mark})
        assert answer.status_code in (200, 422), (sort, answer.status_code, answer.text[:300])
    mark = f"{uuid.uuid4()}|yesterday"
    answer = console.get("/console/authorities", params={"sort": "-updated_at", "after": mark})
    assert answer.status_code == 422 and "after" in answer.text, answer.text[:300]


@pytest.mark.parametrize(("starts", "ends", "field"), [
    ("0001-01-01 00:00", "0001-01-01 02:00", "starts_at"),
    ("9999-12-31 20:00", "9999-12-31 23:59", "starts_at"),
    ("2026-01-01 20:00", "9999-12-31 23:59", "ends_at"),
])  # fmt: skip
def test_notice_dates_outside_the_calendar_are_422_naming_the_field(
    console: httpx.Client, starts: str, ends: str, field: str
) -> None:
    answer = console.get("/console/maintenance-notice",
                         params={"starts_at": starts, "ends_at": ends})  # fmt: skip
    assert answer.status_code == 422, answer.text[:300]
    assert f"{field}: must lie in the years 1970 to 2999" in answer.text


def test_a_far_notice_date_in_range_is_answered(console: httpx.Client) -> None:
    far = {"starts_at": "2999-12-30 20:00", "ends_at": "2999-12-31 02:00"}
    answer = console.get("/console/maintenance-notice", params=far)
    assert answer.status_code == 200, answer.text[:300]
    assert "working days" in answer.text


TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0001-01-01 00:00", "9999-12-31 23:59", "2027-06-14 20:00",
                     "2027-06-14T20:00+14:00", "-1", "0", "1e999", "nan", str(2**63),
                     "DE", "XX", "\x00", "ud800", "a" * 300, "-updated_at", "code", "ref",
                     f"{uuid.UUID(int=0)}|x", f"{uuid.UUID(int=0)}|2027-01-01T00:00:00"]),
)  # fmt: skip
PAGES = [
    "/console/",
    "/console/resolve",
    "/console/maintenance-notice",
    "/console/import",
    *(f"/console/{kind}" for kind in KINDS),
    *(f"/console/{kind}/new" for kind in KINDS),
]
PARAMETERS = [
    "q",
    "sort",
    "after",
    "page",
    "owner",
    "starts_at",
    "ends_at",
    "country",
    "instrument",
    "competence",
    "postal_code",
    "date",
    "code",
    "kind",
    "done",
]


@FUZZ
@given(page=st.sampled_from(PAGES),
       query=st.dictionaries(st.sampled_from(PARAMETERS), TEXT, max_size=5))  # fmt: skip
def test_no_query_parameter_gets_a_5xx(console: httpx.Client, page: str,
                                       query: dict[str, str]) -> None:  # fmt: skip
    _fine(console.get(page, params=query), (page, query))


@FUZZ
@given(kind=st.sampled_from(list(KINDS)),
       fields=st.dictionaries(st.sampled_from(["code", "owner", "names.de", "names.en",
                                               "valid_from", "starts_at", "ends_at", "geo",
                                               "languages", "ref", "id", "address.city",
                                               "priority", "kind", "action"]),
                              TEXT, max_size=6))  # fmt: skip
def test_no_new_entry_form_gets_a_5xx(console: httpx.Client, kind: str,
                                      fields: dict[str, str]) -> None:  # fmt: skip
    form = console.get(f"/console/{kind}/new", params={"owner": "DE"})
    token = csrf_of(form.text) if form.status_code == 200 else ""
    answer = console.post(f"/console/{kind}/new", data={"csrf": token, "owner": "DE", **fields})
    _fine(answer, (kind, fields))


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.sampled_from([
           b"PK\x03\x04" + b"\x00" * 40, b"code\n\x00\n", b'{"kind":"authorities"}\n',
           b"\xef\xbb\xbfcode,names.de\nDE:F-1,x\n"])),
       filename=st.sampled_from(["a.csv", "a.xlsx", "a.ndjson", "a", "", "a.CSV", "..xlsx"]),
       kind=TEXT, mode=st.sampled_from(["merge", "replace", "", "x"]),
       action=st.sampled_from(["check", "apply", ""]), owner=TEXT)  # fmt: skip
def test_no_upload_form_gets_a_5xx(console: httpx.Client, content: bytes, filename: str,
                                   kind: str, mode: str, action: str,
                                   owner: str) -> None:  # fmt: skip
    token = csrf_of(console.get("/console/import").text)
    data = {"csrf": token, "content": base64.b64encode(content).decode(),
            "filename": filename, "kind": kind, "mode": mode, "action": action,
            "owner": owner}  # fmt: skip
    _fine(console.post("/console/import", data=data), (filename, kind, mode, owner, content[:40]))
