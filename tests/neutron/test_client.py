"""The client's rule for a 500 (no server): sent again only when the server's log shows that
SQLite refused before Neutron changed anything; any other 500 fails with the log's lines."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import client
from .client import NeutronClient, NeutronError

PREFIX = "2026-12-01 09:32:18.253 6650 ERROR neutron.pecan_wsgi.hooks.translation"
OTHER = "2026-12-01 09:32:18.260 6650 INFO neutron.wsgi"


def record(request_id: str, error: str) -> list[str]:
    """An oslo.log ERROR record: the request id on the first line only."""
    return [
        f"{PREFIX} [None {request_id} - fake_project_id - - - -] POST failed.: {error}",
        f"{PREFIX} Traceback (most recent call last):",
        f'{PREFIX}   File "/usr/lib/python3/dist-packages/sqlalchemy/engine/base.py"',
        f"{PREFIX} {error}",
    ]


class Fake:
    """Answers each POST with the next planned 500 (writing its log record first), then 201."""

    def __init__(self, log: Path, errors: list[str]) -> None:
        self.log = log
        self.errors = errors
        self.requests = 0


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[Fake, str]]:
    state = Fake(tmp_path / "neutron-server.log", [])
    state.log.write_text(f"{OTHER} [None req-0 - - - - - -] unrelated\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            state.requests += 1
            request_id = f"req-{state.requests}"
            if state.errors:
                lines = record(request_id, state.errors.pop(0))
                with state.log.open("a") as log:
                    # Another request's line between records, as under eventlet.
                    log.write("\n".join(lines) + f"\n{OTHER} [None req-x] other\n")
                body, status = b'{"message": "The server has either erred"}', 500
            else:
                body, status = json.dumps({"subnet": {"id": "made"}}).encode(), 201
            self.send_response(status)
            self.send_header("X-Openstack-Request-Id", request_id)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}/v2.0"
    finally:
        httpd.shutdown()


LOCKED = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
TABLE_LOCKED = (
    "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database table is locked"
)


@pytest.mark.parametrize("refusal", [LOCKED, TABLE_LOCKED])
def test_a_request_sqlite_refused_is_sent_again(fake: tuple[Fake, str], refusal: str) -> None:
    state, endpoint = fake
    state.errors = [refusal, refusal]
    made = NeutronClient(endpoint, state.log).create("subnets", {"cidr": "10.0.0.0/26"})
    assert made == {"id": "made"}
    assert state.requests == 3


def test_sqlite_refusing_every_time_ends_in_its_error(
    fake: tuple[Fake, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, endpoint = fake
    monkeypatch.setattr(client, "RETRY_PAUSES", (0.0,) * 3)
    state.errors = [LOCKED] * 4
    with pytest.raises(NeutronError, match="database is locked"):
        NeutronClient(endpoint, state.log).create("subnets", {"cidr": "10.0.0.0/26"})
    assert state.requests == 4


def test_any_other_500_is_neutrons_answer_with_its_log(fake: tuple[Fake, str]) -> None:
    state, endpoint = fake
    state.errors = ["sqlalchemy.orm.exc.StaleDataError: expected to update 1 row(s)"]
    with pytest.raises(NeutronError) as raised:
        NeutronClient(endpoint, state.log).create("subnets", {"cidr": "10.0.0.0/26"})
    assert state.requests == 1
    assert raised.value.status == 500
    # The record's own lines, traceback included; not the other requests' lines.
    assert "StaleDataError: expected to update 1 row(s)" in raised.value.message
    assert "Traceback" in raised.value.message
    assert "req-x" not in raised.value.message
    assert "unrelated" not in raised.value.message


def test_without_the_log_a_500_is_not_sent_again(fake: tuple[Fake, str]) -> None:
    state, endpoint = fake
    state.errors = [LOCKED]
    with pytest.raises(NeutronError):
        NeutronClient(endpoint, None).create("subnets", {"cidr": "10.0.0.0/26"})
    assert state.requests == 1
