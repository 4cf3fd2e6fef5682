"""The agent's configuration file: a mistake is one line naming the file and the setting
(and `cdb-service connector-sync` says it with exit status 2, no traceback); a good file
gives every kind of target with its settings."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from cdb_service.mistakes import UserMistake
from cdb_service.outbound import BearerToken, ClientCredentials
from cdb_service.sync import config
from cdb_service.sync.connector_ng import ConnectorNgTarget
from cdb_service.sync.directory import DirectoryTarget
from cdb_service.sync.domibus import DomibusTarget
from tests.support.service_process import Pki, executable, make_pki


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agent")
    make_pki(root / "pki", ("agent",))
    (root / "connector").mkdir()
    (root / "gw-password").write_text("Domibus-5.1!\n")
    return root


def _top(place: Path) -> str:
    pki = Pki(place / "pki")
    return textwrap.dedent(f"""
        registry = "https://cdb.example.eu/"
        party = "fr-ap"
        state_file = "{place}/state.json"
        [tls]
        ca = "{pki.ca}"
        cert = "{pki.cert("agent")}"
        key = "{pki.key("agent")}"
        [credentials]
        issuer = "https://idp.example.eu/realms/cdb"
        client_id = "fr-ap-sync"
    """)


def _dir(place: Path, extra: str = "") -> str:
    return (
        textwrap.dedent(f"""
        [[targets]]
        kind = "connector4-dir"
        name = "c4"
        directory = "{place}/connector"
    """)
        + extra
    )


def _write(place: Path, text: str, name: str = "agent.toml") -> Path:
    path = place / name
    path.write_text(text)
    return path


def test_a_good_file_gives_each_kind_of_target(place: Path) -> None:
    text = _top(place) + _dir(place, 'restart_command = ["systemctl", "restart", "connector"]\n')
    text += textwrap.dedent(f"""
        [[targets]]
        kind = "domibus"
        name = "gw-1"
        base_url = "https://gw.example.eu/domibus/"
        username = "cdb-sync"
        password_file = "{place}/gw-password"
        truststore_api = true
        [[targets]]
        kind = "connector-ng"
        name = "ng-1"
        base_url = "https://ng.example.eu"
        username = "cdb-sync"
        password = "connector-NG-7!"
        business_domain = "lane-1"
    """)
    loaded = config.load(_write(place, text))
    assert loaded.registry == "https://cdb.example.eu"
    assert loaded.jwks == "https://cdb.example.eu/.well-known/jwks.json"
    assert loaded.store_password == "changeit" and loaded.poll_s == config.DEFAULT_POLL_S
    assert isinstance(loaded.credentials, ClientCredentials)
    assert loaded.credentials.client_id == "fr-ap-sync"
    c4, gw, ng = loaded.targets
    assert isinstance(c4, DirectoryTarget) and c4.restart_command == (
        "systemctl", "restart", "connector")  # fmt: skip
    assert c4.names["truststore.jks"] == "truststore.jks"
    assert isinstance(gw, DomibusTarget) and gw.password == "Domibus-5.1!"
    assert gw.truststore_api and gw.base_url == "https://gw.example.eu/domibus"
    assert isinstance(ng, ConnectorNgTarget) and ng.business_domain == "lane-1"


MISTAKES = [
    ("party missing", lambda t: t.replace('party = "fr-ap"\n', ""), "party is missing"),
    ("registry not a URL", lambda t: t.replace("https://cdb.example.eu/", "cdb.example.eu"),
     "registry must be the registry's https:// base URL"),
    ("an unknown setting", lambda t: "pol_seconds = 3\n" + t, "pol_seconds is not a setting"),
    ("poll not a number", lambda t: 'poll_seconds = "often"\n' + t,
     "poll_seconds must be a number of seconds"),
    ("a TLS file missing", lambda t: t.replace("ca.pem", "nowhere.pem"),
     "tls.ca names no readable file"),
    ("cert without key", lambda t: "\n".join(line for line in t.splitlines()
                                             if not line.startswith("key = ")),
     "tls.cert and tls.key go together"),
    ("issuer without client id", lambda t: t.replace('client_id = "fr-ap-sync"\n', ""),
     "credentials.client_id is missing"),
    ("issuer over http", lambda t: t.replace("https://idp", "http://idp"),
     "credentials.issuer must be an https:// URL"),
    ("a short store password", lambda t: 'store_password = "abc"\n' + t,
     "store_password must be 6 to 128 characters"),
    ("no target", lambda t: t.split("[[targets]]")[0], "give at least one [[targets]]"),
    ("unknown kind", lambda t: t.replace('"connector4-dir"', '"connector5"'),
     "targets[1].kind 'connector5' is not one of: connector-ng, connector4-dir, domibus"),
    ("a name the registry refuses", lambda t: t.replace('name = "c4"', 'name = "c 4"'),
     "targets[1].name must be 1 to 100 letters"),
    ("the same target twice", lambda t: t + t[t.index("[[targets]]"):],
     "targets[2].name 'c4' is given twice"),
    ("directory missing", lambda t: t.replace("/connector\"", "/nowhere\""),
     "targets[1].directory is not a directory"),
    ("restart not a list", lambda t: t + 'restart_command = "systemctl restart x"\n',
     "targets[1].restart_command must be a list of words"),
    ("a file name with a slash", lambda t: t + 'pmode_file = "../pmode.xml"\n',
     "targets[1].pmode_file must be a file name in the directory"),
    ("domibus without password", lambda t: t + textwrap.dedent("""
        [[targets]]
        kind = "domibus"
        name = "gw-1"
        base_url = "https://gw.example.eu/domibus"
        username = "cdb-sync"
     """), "targets[2].password_file or password: give one of them"),
    ("not TOML", lambda t: t + "[[targets]\n", "not TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "change", "says"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_one_line_naming_the_file_and_the_setting(
    place: Path, what: str, change: object, says: str
) -> None:
    assert callable(change)
    path = _write(place, change(_top(place) + _dir(place)), f"{what.replace(' ', '-')}.toml")
    with pytest.raises(UserMistake) as raised:
        config.load(path)
    line = str(raised.value)
    assert "\n" not in line and line.startswith(f"{path}: ") and says in line, line


def test_the_command_says_a_mistake_in_one_line_with_status_2(place: Path) -> None:
    path = _write(place, _top(place), "no-targets.toml")
    done = subprocess.run([executable(), "connector-sync", "--config", str(path), "--once"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("cdb-service connector-sync: ") and "[[targets]]" in lines[0]


def test_a_token_file_instead_of_an_issuer(place: Path) -> None:
    (place / "token").write_text("t0k3n\n")
    issuer = 'issuer = "https://idp.example.eu/realms/cdb"\nclient_id = "fr-ap-sync"\n'
    text = _top(place).replace(issuer, f'token_file = "{place}/token"\n')
    loaded = config.load(_write(place, text + _dir(place), "token.toml"))
    assert isinstance(loaded.credentials, BearerToken)
    assert loaded.credentials.value() == "t0k3n"
