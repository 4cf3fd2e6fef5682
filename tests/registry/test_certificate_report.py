"""`cdb-service certificates`: the report the daily timer runs, as an operator reads it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cdb_service.registry.formats.ndjson import export_lines
from tests.support import factories
from tests.support.nginx import free_port
from tests.support.service_process import executable, service_env


def test_the_report_names_certificates_expiring_within_the_window(tmp_path: Path) -> None:
    env = service_env(tmp_path / "data", free_port(), CDB_LOG_LEVEL="WARNING")
    soon, later = factories.certificate_pem(10, "soon"), factories.certificate_pem(400, "later")
    party = factories.routing_party(name="de-ap-soon", certificates=[
        {"use": "signing", "pem": soon}, {"use": "encryption", "pem": later}])  # fmt: skip
    batch = tmp_path / "party.ndjson"
    batch.write_text("".join(line + "\n" for line in export_lines([("routing-parties", party)])))
    for argv in (["migrate"], ["import", str(batch), "--owner", "DE"]):
        subprocess.run([executable(), *argv], env=env, check=True, capture_output=True)

    def report(days: int) -> tuple[int, list[dict[str, object]]]:
        done = subprocess.run([executable(), "certificates", "--within-days", str(days)],
                              env=env, capture_output=True, text=True, check=False)  # fmt: skip
        return done.returncode, json.loads(done.stdout)["certificates"]

    status, found = report(30)
    assert status == 1  # something to act on: the timer's OnFailure= fires
    assert [(c["owner"], c["routing_party"], c["use"]) for c in found] == [
        ("DE", "de-ap-soon", "signing")]  # fmt: skip
    assert 9 <= float(str(found[0]["days_left"])) <= 10 and found[0]["expired"] is False
    assert report(5) == (0, [])
