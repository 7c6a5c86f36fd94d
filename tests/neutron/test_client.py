"""The client's rule for a 500 (no server): sent again only when the server's log shows that
SQLite's lock failed the request, and only where sending it again cannot do twice what the
refused try did; any other 500 fails with the request's log records, whole."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from . import client
from .client import NeutronClient, NeutronError

STAMP = "2026-12-01 09:32:18.253 6650"
TRANSLATION = f"{STAMP} ERROR neutron.pecan_wsgi.hooks.translation"
CATCH = f"{STAMP} ERROR oslo_middleware.catch_errors"
OTHER = f"{STAMP} INFO neutron.wsgi"

LOCKED = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
TABLE_LOCKED = (
    "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database table is locked"
)
DISK = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) disk I/O error"
STALE = "sqlalchemy.orm.exc.StaleDataError: expected to update 1 row(s)"


def translation_record(request_id: str, error: str) -> list[str]:
    """oslo.log's record of a failed request: the request id on the first line only."""
    return [
        f"{TRANSLATION} [None {request_id} - fake_project_id - - - -] POST failed.: {error}",
        f"{TRANSLATION} Traceback (most recent call last):",
        f'{TRANSLATION}   File "/usr/lib/python3/dist-packages/sqlalchemy/engine/base.py"',
        f"{TRANSLATION} {error}",
    ]


def catch_errors_record(request_id: str, error: str) -> list[str]:
    """catch_errors dumps the request over unprefixed lines before the cause."""
    return [
        f"{CATCH} [None {request_id} - p - - - -] An error occurred during processing the "
        "request: POST /v2.0/networks HTTP/1.0",
        "Accept: application/json",
        "",
        f'{{"network": {{}}}}: {error}',
        f"{CATCH} Traceback (most recent call last):",
        f"{CATCH} {error}",
    ]


def autoflush_record(request_id: str, error: str) -> list[str]:
    """The shape CI met: SQLAlchemy's message over several lines, the first of which does
    not name SQLite's refusal (the request failed in an autoflush)."""
    return [
        f"{TRANSLATION} [None {request_id} - fake_project_id - - - -] PUT failed.: "
        "sqlalchemy.exc.OperationalError: (raised as a result of Query-invoked autoflush; "
        "consider using a session.no_autoflush block if this flush is occurring prematurely)",
        f"(sqlite3.OperationalError) {error.rpartition(') ')[2]}",
        "[SQL: UPDATE standardattributes SET revision_number=?, updated_at=? WHERE "
        "standardattributes.id = ? AND standardattributes.revision_number = ?]",
        "[parameters: (2, '2026-12-01 10:25:32.000000', 600, 1)]",
        f"{TRANSLATION} Traceback (most recent call last):",
        f"{TRANSLATION} {error}",
    ]


@dataclass
class Answer:
    """What the fake does with one request: refuse with a 500 logged as `records` make it
    (after committing the create if `commit`), or answer as Neutron would."""

    error: str | None = None
    commit: bool = False
    records: Any = translation_record
    earlier: str | None = None
    """An error the request logged and went on from, before the one that failed it."""


@dataclass
class Fake:
    log: Path
    plan: list[Answer] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    subnets: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    made: int = 0

    def make(self, fields: dict[str, Any], created_at: str | None = None) -> dict[str, Any]:
        stamp = created_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        made = {"id": f"made-{self.made}", "created_at": stamp, **fields}
        self.made += 1
        self.subnets.append(made)
        return made


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[Fake, NeutronClient]]:
    state = Fake(tmp_path / "neutron-server.log")
    state.log.write_text(f"{OTHER} [None req-0 - - - - - -] unrelated\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body: dict[str, Any] = json.loads(self.rfile.read(length)) if length else {}
            state.requests.append(f"{self.command} {self.path}")
            request_id = f"req-{len(state.requests):08d}"
            planned = state.plan.pop(0) if state.plan and self.command != "GET" else Answer()
            if planned.commit and body:
                state.make(body["subnet"])
            if planned.error is not None:
                lines = []
                if planned.earlier:
                    lines.append(
                        f"{STAMP} ERROR neutron.plugins.ml2.plugin [None {request_id} - p - - -"
                        f" -] Failed to delete port x: {planned.earlier}"
                    )
                lines += planned.records(request_id, planned.error)
                with state.log.open("a") as log:
                    # Another request's record right after, as under eventlet.
                    log.write("\n".join(lines) + f"\n{OTHER} [None req-x - - - - - -] other\n")
                self.reply(500, {"message": "The server has either erred"}, request_id)
            elif self.command == "GET":
                self.reply(200, {"subnets": state.subnets}, request_id)
            elif self.command == "DELETE":
                object_id = self.path.rsplit("/", 1)[1]
                kept = [made for made in state.subnets if made["id"] != object_id]
                gone = state.deleted and len(kept) == len(state.subnets)
                state.deleted = True
                state.subnets = kept
                self.reply(404 if gone else 204, None, request_id)
            elif self.path.endswith("add_router_interface"):
                self.reply(200, {"port_id": "p"}, request_id)
            else:
                made = state.make(body["subnet"])
                self.reply(201, {"subnet": made}, request_id)

        def reply(self, status: int, body: Any, request_id: str) -> None:
            text = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("X-Openstack-Request-Id", request_id)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        do_GET = do_POST = do_PUT = do_DELETE = answer  # noqa: N815 (http.server's names)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{httpd.server_address[1]}/v2.0"
        yield state, NeutronClient(endpoint, state.log)
    finally:
        httpd.shutdown()


SUBNET = {"tenant_id": "t-other", "network_id": "n1", "cidr": "10.0.0.0/26", "ip_version": 4}


def posts(state: Fake) -> int:
    return sum(request.startswith("POST") for request in state.requests)


@pytest.mark.parametrize("refusal", [LOCKED, TABLE_LOCKED])
@pytest.mark.parametrize("records", [translation_record, catch_errors_record, autoflush_record])
def test_a_create_sqlite_refused_before_committing_is_sent_again(
    fake: tuple[Fake, NeutronClient], refusal: str, records: Any
) -> None:
    state, neutron = fake
    state.plan = [Answer(refusal, records=records), Answer(refusal, records=records)]
    made = neutron.create("subnets", SUBNET)
    assert made["cidr"] == "10.0.0.0/26"
    assert posts(state) == 3
    assert len(state.subnets) == 1


def test_a_create_refused_after_it_was_committed_is_made_once(
    fake: tuple[Fake, NeutronClient],
) -> None:
    # A port is committed, then its binding; SQLite's lock can refuse the second step. The
    # half-made object goes and the create is sent again whole.
    state, neutron = fake
    state.plan = [Answer(LOCKED, commit=True)]
    made = neutron.create("subnets", SUBNET)
    assert posts(state) == 2
    assert "DELETE /v2.0/subnets/made-0" in state.requests
    assert [subnet["id"] for subnet in state.subnets] == [made["id"]] == ["made-1"]


def test_an_older_object_like_it_is_left_alone(fake: tuple[Fake, NeutronClient]) -> None:
    state, neutron = fake
    state.make(dict(SUBNET), created_at="2020-01-01T00:00:00Z")
    state.plan = [Answer(LOCKED)]
    made = neutron.create("subnets", SUBNET)
    assert posts(state) == 2
    assert not any(request.startswith("DELETE") for request in state.requests)
    assert [subnet["id"] for subnet in state.subnets] == ["made-0", made["id"]]


def test_two_new_objects_like_it_are_not_guessed_between(
    fake: tuple[Fake, NeutronClient],
) -> None:
    state, neutron = fake
    state.make(dict(SUBNET))  # made by someone else in the same second
    state.plan = [Answer(LOCKED, commit=True)]
    with pytest.raises(NeutronError, match="cannot be told") as raised:
        neutron.create("subnets", SUBNET)
    assert posts(state) == 1
    assert not any(request.startswith("DELETE") for request in state.requests)
    assert len(state.subnets) == 2
    assert "database is locked" in raised.value.message


def test_sqlite_refusing_every_time_ends_in_its_error(
    fake: tuple[Fake, NeutronClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, neutron = fake
    monkeypatch.setattr(client, "RETRY_PAUSES", (0.0,) * 3)
    state.plan = [Answer(LOCKED)] * 4
    with pytest.raises(NeutronError, match="database is locked"):
        neutron.create("subnets", SUBNET)
    assert posts(state) == 4


@pytest.mark.parametrize(
    "answer",
    [
        Answer(STALE),
        Answer(DISK),  # SQLite, but not its lock: a second try ends the same
        Answer(STALE, earlier=LOCKED),  # a lock the request logged and went on from
    ],
    ids=["neutron's own 500", "sqlite's disk error", "an earlier handled lock"],
)
def test_any_other_500_is_neutrons_answer_with_its_log(
    fake: tuple[Fake, NeutronClient], answer: Answer
) -> None:
    state, neutron = fake
    state.plan = [answer]
    with pytest.raises(NeutronError) as raised:
        neutron.create("subnets", SUBNET)
    assert posts(state) == 1
    assert raised.value.status == 500
    # The request's records, traceback included; not the other requests' lines.
    assert str(answer.error) in raised.value.message
    assert "Traceback" in raised.value.message
    assert "req-x" not in raised.value.message
    assert "unrelated" not in raised.value.message


def test_a_catch_errors_record_is_kept_whole(fake: tuple[Fake, NeutronClient]) -> None:
    state, neutron = fake
    state.plan = [Answer(STALE, records=catch_errors_record)]
    with pytest.raises(NeutronError) as raised:
        neutron.create("subnets", SUBNET)
    assert "Accept: application/json" in raised.value.message
    assert f"{CATCH} {STALE}" in raised.value.message


def test_a_router_interface_is_never_sent_again(fake: tuple[Fake, NeutronClient]) -> None:
    # Its port may be made and left behind: a second try would fail on the address, or
    # make a second interface.
    state, neutron = fake
    state.plan = [Answer(LOCKED)]
    with pytest.raises(NeutronError, match="database is locked"):
        neutron.add_router_interface("r1", {"subnet_id": "s1"})
    assert len(state.requests) == 1


def test_a_delete_refused_after_it_was_done_is_done(fake: tuple[Fake, NeutronClient]) -> None:
    state, neutron = fake
    state.plan = [Answer(LOCKED)]
    state.deleted = True  # the refused try had deleted it: the second gets a 404
    neutron.delete("subnets", "s1")
    assert state.requests == ["DELETE /v2.0/subnets/s1"] * 2


def test_a_second_delete_by_the_caller_still_gets_its_404(
    fake: tuple[Fake, NeutronClient],
) -> None:
    _, neutron = fake
    neutron.delete("subnets", "s1")
    with pytest.raises(NeutronError) as raised:
        neutron.delete("subnets", "s1")
    assert raised.value.status == 404


def test_without_the_log_a_500_is_not_sent_again(fake: tuple[Fake, NeutronClient]) -> None:
    state, neutron = fake
    state.plan = [Answer(LOCKED)]
    with pytest.raises(NeutronError):
        NeutronClient(neutron.endpoint, state.log.with_name("gone.log")).create("subnets", SUBNET)
    assert posts(state) == 1
