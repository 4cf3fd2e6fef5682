"""The schema's migrations, shipped inside the wheel as `cdb_service._migrations`.

This folder stays at the top of the repository; setup.py maps the package onto it, so
the wheel and an editable install both find it with `importlib.resources`
(`cdb_service.kernel.resources.migrations_dir`). Alembic loads `env.py` and `versions/`
by path; it never imports this package.
"""
