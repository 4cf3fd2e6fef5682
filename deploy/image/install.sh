#!/bin/sh
# The one way cdb-service is installed: the image's build stage runs this script, and
# tests/ops/test_installed_wheel.py runs it too, so the image cannot drift from what the
# suite installs and then drives through the runbook.
#
#   install.sh WHEEL PREFIX
#
# With WHEELHOUSE=DIR the dependencies come from DIR only (`make image` fills
# dist/wheelhouse on the host, so the image builds without reaching an index);
# without it, from pip's configured index.
#
# PREFIX becomes a virtual environment holding the wheel with its runtime dependencies
# only (no extras), plus `cdb-healthcheck` (the container's health check). Nothing is
# taken from a checkout: the wheel carries the migrations, seed, calendar, templates,
# XSDs and assets. The last step starts the installed command once, so that a wheel
# missing a dependency fails here and not on the first request.
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 WHEEL PREFIX" >&2
    exit 2
fi
wheel=$1
prefix=$2
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

"$python" -m venv "$prefix"
if [ -n "${WHEELHOUSE:-}" ]; then
    set -- --no-index --find-links "$WHEELHOUSE"
else
    set --
fi
"$prefix/bin/python" -m pip install --quiet --disable-pip-version-check "$@" "$wheel"
install -m 0755 "$here/healthcheck.py" "$prefix/bin/cdb-healthcheck"
# Its shebang: the environment's own interpreter, wherever PREFIX is.
sed -i "1s|.*|#!$prefix/bin/python|" "$prefix/bin/cdb-healthcheck"
# Byte-compiled now: the image's root file system is read-only at run time.
"$prefix/bin/python" -m compileall -q "$prefix/lib" >/dev/null
"$prefix/bin/cdb-service" --help >/dev/null
"$prefix/bin/python" -c "import cdb_service.app, cdb_service.db.migrate as m; assert m.head_revisions()"
echo "installed $(basename "$wheel") into $prefix"
