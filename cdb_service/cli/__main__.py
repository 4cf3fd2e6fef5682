"""`python -m cdb_service.cli`, as `cdb-service` (the package's `main`)."""

from cdb_service.cli import main

if __name__ == "__main__":  # importing the module (as a scan of the package does) runs nothing
    raise SystemExit(main())
