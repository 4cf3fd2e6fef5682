"""Revisions and entry versions: the one history mechanism every kind shares.

Every write is one registry revision. The revision number is taken by
incrementing the single `registry_head` row as the first statement of the
writing transaction; that row lock is the registry-wide write lock (on SQLite
the database write lock plays the same part). Writers therefore commit one after
another in revision order, and a rolled-back writer gives its number back, so
revisions are strictly increasing and gap-free in commit order: a reader that
has seen R and asks for what came after R cannot miss a revision that commits
later with a smaller number.

Every change of an entry appends an immutable entry version holding the full
document; history, point-in-time reads and the change feed all read from it.

Two writers use this mechanism, and only they write `registry_head`, `revisions`
and `entry_versions`: `write_revision` (the service: it allocates the next
number) and `db/replica.py` (a mirror: it records its source's revisions as they
are). Both take the lock with `lock_registry` and record versions with
`version_values`; a test (tests/db/test_writers.py) keeps other modules out.

The parts, one job each (this package's names are the ones to import):

  tables.py   the history tables, the protocols a kind meets, the rows both writers build
  writer.py   `RevisionWriter`: one revision's creates, updates and deletes
  head.py     the registry-wide lock, `write_revision`, the head's revision
  queries.py  snapshots, point-in-time reads, history, the versions after a revision
"""

from cdb_service.db.revisions.head import head_revision, lock_registry, write_revision
from cdb_service.db.revisions.queries import (
    changes_after,
    collection_as_of,
    history,
    read_snapshot,
    stream_written_in,
    valid_on,
    version_as_of,
    versions_from,
)
from cdb_service.db.revisions.tables import (
    INSERT_CHUNK,
    MAX_REVISION,
    EntryModel,
    EntryVersion,
    Operation,
    Projection,
    RegistryHead,
    Revision,
    StoredKind,
    insert_rows,
    new_entry_id,
    projection_rows,
    version_values,
)
from cdb_service.db.revisions.writer import (
    FLUSH_EVERY,
    RevisionWriter,
    StaleVersionError,
    WrittenVersion,
)

__all__ = [
    "FLUSH_EVERY",
    "INSERT_CHUNK",
    "MAX_REVISION",
    "EntryModel",
    "EntryVersion",
    "Operation",
    "Projection",
    "RegistryHead",
    "Revision",
    "RevisionWriter",
    "StaleVersionError",
    "StoredKind",
    "WrittenVersion",
    "changes_after",
    "collection_as_of",
    "head_revision",
    "history",
    "insert_rows",
    "lock_registry",
    "new_entry_id",
    "projection_rows",
    "read_snapshot",
    "stream_written_in",
    "valid_on",
    "version_as_of",
    "version_values",
    "versions_from",
    "write_revision",
]
