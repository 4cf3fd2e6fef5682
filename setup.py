"""Which packages the wheel holds, and the one build step pyproject.toml cannot declare.

`migrations/` and `seed/` stay at the top of the repository (the layout the project was
specified with) and ship inside the wheel as `cdb_service._migrations` and
`cdb_service._seed`. pyproject.toml can map a package onto a folder (`package-dir`) but
cannot add mapped packages to the ones `packages.find` discovers; this file does both.

The console's catalogues (`cdb_service/console/locale/<lang>/LC_MESSAGES/messages.po`) are
compiled into `messages.mo` beside them in the built package, so the installed service
reads compiled catalogues; a checkout compiles them in memory (`console/i18n.py`).
"""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

SHIPPED_FOLDERS = {"cdb_service._migrations": "migrations", "cdb_service._seed": "seed"}


class BuildWithCatalogues(build_py):
    """build_py, then each catalogue compiled (a broken catalogue fails the build)."""

    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in Path(self.build_lib, "cdb_service", "console", "locale").glob(
            "*/LC_MESSAGES/messages.po"
        ):
            with po.open("rb") as source:
                catalog = read_po(source, locale=po.parent.parent.name)
            with po.with_suffix(".mo").open("wb") as target:
                write_mo(target, catalog, use_fuzzy=False)


setup(
    packages=[*find_packages(include=["cdb_service", "cdb_service.*"]), *SHIPPED_FOLDERS],
    package_dir=SHIPPED_FOLDERS,
    cmdclass={"build_py": BuildWithCatalogues},
)
