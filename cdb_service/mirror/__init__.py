"""The mirror: a client-side replica of the registry that follows a service and resolves offline.

  cdb-service mirror --from https://cdb.example:8443 --into sqlite:///var/mirror.sqlite3 \\
      --ca ca.pem --cert client.pem --key client-key.pem --token-file token [--serve | --once]

The mirror's store is an ordinary cdb database, migrated with the service's own
migrations, so that the service's lookup index and resolver serve from it as they
are. It holds what the source holds: the same entry ids, versions and revisions,
and `registry_head.revision` is the source revision it reflects. It writes only
through the replica writer (`cdb_service/db/replica.py`), which takes the
registry lock the way the service's own revision writer does.

Where things are:
  config.py    what a mirror is told (source, database, credentials, bounds)
  source.py    talking to the source: the extract as bounded lines, the feed, the JWKS
  store.py     the replica's local state: head, owner check, loading an extract,
               applying a revision (through the replica writer)
  follower.py  the sync loop: extract if needed, follow the feed, re-extract when it breaks
  serving.py   the read-only loopback resolve app (`--serve`), and the parts it holds
  readiness.py when it may answer: one condition for `/health/ready` and the guard of
               every look-up route (503 `not-ready` with Retry-After until it holds)
  deps.py      those parts as the dependencies its routes ask for
  process.py   the process: prepare the database, follow, serve, stop on a signal
  cli.py       the command's arguments; `cdb_service/cli/` registers it

Guarantees:
- An extract (`GET /api/v1/extract`, uncompressed) is read as a stream, no line
  longer than `MAX_LINE_BYTES`, each line's chain checked as it arrives, entries
  written in chunks inside ONE transaction that replaces the whole registry; the
  trailer (digest, count, and JWS against the source's `/.well-known/jwks.json`)
  is checked before commit. A bad, truncated or over-long extract is refused and
  changes nothing. Memory stays flat however large the registry is.
- The feed (`GET /api/v1/changes?since=HEAD&wait=…`) is applied one source
  revision per transaction, the head moved in the same one, so a crash (kill -9)
  leaves the mirror at a whole revision and a restart resumes from its head.
- A change that does not fit the mirror's rows (the copy diverged), a 410 (the
  feed no longer reaches back that far) and a 422 (the mirror is after the
  source's head: the source was restored) end in a fresh extract.
- The mirror writes its revisions as `mirror:<source URL>` and refuses to touch a
  database whose revisions someone else wrote (a registry of its own); a mirror
  of another source is re-extracted.

Reference data: every feed page announces the source's gazetteer identity; when
it is not the mirror's, the mirror copies each changed country from the source's
signed gazetteer extract (`GET /api/v1/gazetteer/{country}`, see
`mirror/gazetteer.py`). Until its gazetteer is the source's, and until it has caught
up with the source once since it started (or found it unreachable while holding a
whole copy), the mirror is not ready and answers no look-up (503 with Retry-After,
`mirror/readiness.py`): it would resolve differently from the service.

Known limit: a feed page is read whole (a revision is applied in one transaction
and arrives in one page), so a single very large revision (a huge batch import)
costs memory in proportion to its size; a fresh extract does not.
"""
