"""Files the package ships (migrations, seed, calendar, templates, XSDs, assets), found by name.

They are found with `importlib.resources`, never by walking up from a source file: in an
installed wheel there is no checkout above `site-packages`, and an editable install maps
`cdb_service._migrations` and `cdb_service._seed` onto the repository's top-level
`migrations/` and `seed/` (see setup.py). Alembic, Jinja2 and lxml want a directory or
file on disk, so the answer is a `Path`; a zipped install (which pip never makes) is
refused with one line instead of failing later somewhere inside those libraries.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def packaged(package: str, *parts: str) -> Path:
    """The directory or file `parts` inside the installed `package`, as a path on disk."""
    found = files(package).joinpath(*parts)
    if not isinstance(found, Path):
        raise RuntimeError(f"{package} is not installed as files on disk ({found!r})")
    return found


def migrations_dir() -> Path:
    return packaged("cdb_service._migrations")


def seed_dir() -> Path:
    return packaged("cdb_service._seed")
