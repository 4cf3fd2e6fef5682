"""nginx for tests: render `deploy/nginx/cdb-service.conf`, run it in a temp directory.

The deploy file is used exactly as an operator would use it: its `${VAR}`
placeholders filled in (as `envsubst` with the variables named), included in a
minimal `nginx.conf` whose pid, logs and temp paths all live in the test's
directory. nginx runs in the foreground (`daemon off`) as a child process.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "cdb-service.conf"
PLACEHOLDERS = ("CDB_NGINX_LISTEN", "CDB_UPSTREAM", "CDB_TLS_CERT", "CDB_TLS_KEY")
# The access log of the test nginx: enough to see which request id it forwarded.
LOG_FORMAT = '$request_id $status "$request" $ssl_client_s_dn'


def nginx_binary() -> str | None:
    """nginx on PATH (or in the sbin directories a non-root PATH may lack)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


requires_nginx = pytest.mark.skipif(
    nginx_binary() is None,
    reason="nginx is not installed (Debian: apt-get install nginx; `make test` installs it)",
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float,
                  host: str = "127.0.0.1") -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not open port {port} within {timeout} s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def render(values: Mapping[str, str], out: Path, template: Path = DEPLOY_CONF) -> Path:
    """The deploy file with its placeholders filled in (and only those touched)."""
    missing = set(PLACEHOLDERS) - set(values)
    assert not missing, f"no value for {sorted(missing)}"
    text = re.sub(
        r"\$\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template.read_text()
    )
    left = re.findall(r"\$\{\w+\}", text)
    assert not left, f"{template.name} has placeholders the test does not fill: {left}"
    out.write_text(text)
    return out


def main_conf(root: Path, include: Path) -> str:
    """A whole nginx.conf around the deploy file; everything nginx writes stays in `root`."""
    temp = "\n".join(
        f"    {kind}_temp_path {root / 'temp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, workers would drop to `nobody`, who cannot enter pytest's 0700 directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} info;

events {{
    worker_connections 128;
}}

http {{
    log_format cdb_test '{LOG_FORMAT}';
    access_log {root / "access.log"} cdb_test;
{temp}
    include {include};
}}
"""


@dataclass
class Nginx:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text() if path.exists() else ""

    @property
    def access_log(self) -> str:
        path = self.root / "access.log"
        return path.read_text() if path.exists() else ""


@contextmanager
def running_nginx(root: Path, *, upstream: str, cert: Path, key: Path, timeout: float = 15,
                  edit: Callable[[str], str] | None = None) -> Iterator[Nginx]:  # fmt: skip
    """nginx with the deploy config on a free loopback port, in front of `upstream`;
    `edit` changes the rendered site file (a setting an operator may choose)."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed")
    root.mkdir(parents=True, exist_ok=True)
    (root / "temp").mkdir(exist_ok=True)
    port = free_port()
    site = render(
        {"CDB_NGINX_LISTEN": f"127.0.0.1:{port}", "CDB_UPSTREAM": upstream,
         "CDB_TLS_CERT": str(cert), "CDB_TLS_KEY": str(key)},
        root / "cdb-service.conf",
    )  # fmt: skip
    if edit is not None:
        site.write_text(edit(site.read_text()))
    conf = root / "nginx.conf"
    conf.write_text(main_conf(root, site))
    # -e: the log nginx writes before it has read the configuration (nginx >= 1.19.5).
    command = [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"nginx -t failed:\n{checked.stderr}"
    output = (root / "nginx.out").open("wb")
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    nginx = Nginx(root, port, process)
    try:
        try:
            wait_for_port(port, process, "nginx", timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{nginx.error_log}") from None
        yield nginx
    finally:
        stop(process, signal.SIGQUIT)  # graceful: finish requests, then exit
        output.close()
