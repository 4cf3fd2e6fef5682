"""The seed data and the holiday calendar, shipped inside the wheel as `cdb_service._seed`.

This folder stays at the top of the repository; setup.py maps the package onto it, so
the wheel and an editable install both find it with `importlib.resources`
(`cdb_service.kernel.resources.seed_dir`). It holds data only.
"""
