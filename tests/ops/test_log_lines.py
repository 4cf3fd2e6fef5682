"""Several workers write to one stream (the journal, a pod's log): each line whole.

Unbuffered, as the image runs Python (PYTHONUNBUFFERED), `print` wrote a line's text
and its newline in two writes, and another worker's line could land between them:
two JSON objects on one line, and an empty one after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WRITERS, LINES = 4, 3000
SCRIPT = f"""
import os
from cdb_service.logging import configure_logging, get_logger

configure_logging("INFO")
log = get_logger("cdb.test")
children = []
for writer in range({WRITERS}):
    pid = os.fork()
    if pid == 0:
        for n in range({LINES}):
            log.info("line", writer=writer, n=n, padding="x" * 200)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""


def test_workers_writing_at_once_leave_every_log_line_whole(tmp_path: Path) -> None:
    out = tmp_path / "log"
    with out.open("wb") as stream:
        subprocess.run([sys.executable, "-c", SCRIPT], stdout=stream, check=True,
                       env=os.environ | {"PYTHONUNBUFFERED": "1"})  # fmt: skip
    lines = out.read_text().splitlines()
    events = [json.loads(line) for line in lines]  # a torn line does not parse
    per_process: dict[int, int] = {}
    for event in events:  # every line names its process
        per_process[event["pid"]] = per_process.get(event["pid"], 0) + 1
    assert sorted(per_process.values()) == [LINES] * WRITERS
