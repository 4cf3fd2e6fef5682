"""Which packages the wheel holds; everything else about the build is in pyproject.toml.

`migrations/` and `seed/` stay at the top of the repository (the layout the project was
specified with) and ship inside the wheel as `cdb_service._migrations` and
`cdb_service._seed`. pyproject.toml can map a package onto a folder (`package-dir`) but
cannot add mapped packages to the ones `packages.find` discovers; this file does both.
"""

from setuptools import find_packages, setup

SHIPPED_FOLDERS = {"cdb_service._migrations": "migrations", "cdb_service._seed": "seed"}

setup(
    packages=[*find_packages(include=["cdb_service", "cdb_service.*"]), *SHIPPED_FOLDERS],
    package_dir=SHIPPED_FOLDERS,
)
