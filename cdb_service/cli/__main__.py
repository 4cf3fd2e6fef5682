"""`python -m cdb_service.cli`, as `cdb-service` (the package's `main`)."""

from cdb_service.cli import main

raise SystemExit(main())
