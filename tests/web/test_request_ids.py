"""The service's request ids stay unique across workers, which are forks of one process."""

from __future__ import annotations

import os

from cdb_service.web.request_id import _new_id


def test_a_forked_worker_draws_request_ids_of_its_own() -> None:
    parent = _new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: its next id, then gone
        os.write(write, _new_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == len(parent) == 32
    # Its own random half: a counter continued from the parent's would repeat its ids.
    assert child[:16] != parent[:16]
