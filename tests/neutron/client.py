"""A small Neutron API client (plain HTTP), and the dump the tests compare."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Body = dict[str, Any]

# Collection name in the URL -> the key of one object in a body.
SINGULAR = {
    "networks": "network",
    "subnets": "subnet",
    "ports": "port",
    "routers": "router",
    "security-groups": "security_group",
    "security-group-rules": "security_group_rule",
}
DUMPED = tuple(SINGULAR)

# Neutron's bookkeeping, which changes when a child changes (a subnet added to a network, an
# interface added to a router) without the object's own content changing.
BOOKKEEPING = ("revision_number", "updated_at")


class NeutronError(Exception):
    """A request Neutron refused, with Neutron's own type and message."""

    def __init__(self, method: str, path: str, status: int, kind: str, message: str) -> None:
        super().__init__(f"Neutron refused {method} {path}: {status} {kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message


# SQLite's own refusals: another connection holds the database ("database is locked"; the
# server's worker process and its background work in the API process both write to the
# file), or a reader in the same connection holds the table ("database table is locked").
LOCKED = ("database is locked", "database table is locked")
# The pauses before each new try: about 14 s in all, for a background task that holds
# SQLite's lock under load (the guest's qemu beside it).
RETRY_PAUSES = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 4.0, 4.0)
LOGGED_LINES = 60

# oslo.log: "<date> <time> <pid> <LEVEL> <logger> " starts every record's first line, followed
# by its context ("[None req-... ]" or "[-]"); a traceback's lines repeat the five fields
# without the context; a message over several lines (a request dumped by catch_errors)
# continues on lines without any prefix.
RECORD_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \d+ ([A-Z]+) \S+) (.*)")
CONTEXT = re.compile(r"\[[^\]]*\]")

Record = list[str]
Records = list[Record]  # (a module-level name: in the class, list is the method)
Ids = list[str]


class MaybeCommitted(Exception):
    """A refused create that cannot be sent again safely: which object the refused try
    made, if any, cannot be told."""


@dataclass
class NeutronClient:
    endpoint: str
    """The API root, e.g. http://127.0.0.1:PORT/v2.0"""
    server_log: Path | None = None
    """The server's log: where a 500 is told apart from SQLite's lock (see request)."""

    def request(self, method: str, path: str, body: Body | None = None) -> Body:
        """One API call. A 500 that SQLite caused is sent again, but only where sending it
        again cannot do twice what the first did: a read, an update of one object (the same
        fields again), a delete (a 404 after it means the first one did it), or a create:
        Neutron commits some creates in two steps (a port, then its binding), and the refusal
        may come after the first, so the object the refused try made, if any (made since it
        was sent, with all the create's plain fields), is deleted first. A router interface's
        add or remove is never sent again. Any other 500 fails with the server's log for it."""
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(len(RETRY_PAUSES) + 1):
            # Neutron's created_at has whole seconds: an object made by this try is not older.
            began = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
            request = urllib.request.Request(
                self.endpoint + path,
                data=data,
                method=method,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    text = response.read()
                break
            except urllib.error.HTTPError as error:
                raw = error.read().decode(errors="replace")
                if method == "DELETE" and error.code == 404 and attempt > 0:
                    return {}  # the refused try had deleted it
                records = self._records(error)
                note = ""
                if attempt < len(RETRY_PAUSES) and _refused_by_sqlite(records):
                    try:
                        if self._may_send_again(method, path, body, began):
                            time.sleep(RETRY_PAUSES[attempt])
                            continue
                    except MaybeCommitted as committed:
                        note = f"\nnot sent again: {committed}"
                try:
                    fault = json.loads(raw)["NeutronError"]
                    kind, message = fault["type"], fault["message"]
                except (ValueError, KeyError, TypeError):
                    kind, message = error.reason, raw
                if records:
                    # Neutron's 500 body says nothing; its log says why.
                    lines = [line for record in records for line in record]
                    message += "\nneutron-server's log for this request:\n" + "\n".join(
                        lines[:LOGGED_LINES]
                    )
                raise NeutronError(
                    method, path, error.code, str(kind), str(message) + note
                ) from None
        result: Body = json.loads(text) if text else {}
        return result

    # -- collections ----------------------------------------------------------------------

    def create(self, collection: str, fields: Body) -> Body:
        key = SINGULAR[collection]
        created: Body = self.request("POST", f"/{collection}", {key: fields})[key]
        return created

    def show(self, collection: str, object_id: str) -> Body:
        shown: Body = self.request("GET", f"/{collection}/{object_id}")[SINGULAR[collection]]
        return shown

    def update(self, collection: str, object_id: str, fields: Body) -> Body:
        key = SINGULAR[collection]
        updated: Body = self.request("PUT", f"/{collection}/{object_id}", {key: fields})[key]
        return updated

    def delete(self, collection: str, object_id: str) -> None:
        self.request("DELETE", f"/{collection}/{object_id}")

    def list(self, collection: str, **filters: str | list[str]) -> list[Body]:
        query = f"?{urllib.parse.urlencode(filters, doseq=True)}" if filters else ""
        found: list[Body] = self.request("GET", f"/{collection}{query}")[
            collection.replace("-", "_")
        ]
        return found

    # -- routers --------------------------------------------------------------------------

    def add_router_interface(self, router_id: str, fields: Body) -> Body:
        return self.request("PUT", f"/routers/{router_id}/add_router_interface", fields)

    def remove_router_interface(self, router_id: str, fields: Body) -> Body:
        return self.request("PUT", f"/routers/{router_id}/remove_router_interface", fields)

    # -- what the tests compare -----------------------------------------------------------

    def dump(self, projects: Iterable[str]) -> dict[str, Any]:
        """Every network, subnet, port, router, security group and rule of `projects`, by
        collection and id, with all their fields."""
        dump: dict[str, Any] = {}
        for collection in DUMPED:
            objects = {}
            for found in self.list(collection, tenant_id=sorted(projects)):
                # A group's rules are dumped on their own; here they would only repeat.
                objects[found["id"]] = {
                    k: v for k, v in found.items() if k != "security_group_rules"
                }
            dump[collection] = objects
        return dump

    # -- sending again ------------------------------------------------------------------

    def _may_send_again(self, method: str, path: str, body: Body | None, began: datetime) -> bool:
        parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
        if method == "GET":
            return True
        if method in ("PUT", "DELETE"):
            return len(parts) == 2 and parts[0] in SINGULAR  # not a router's action
        if method == "POST" and len(parts) == 1 and parts[0] in SINGULAR and body:
            collection = parts[0]
            made = self._made_since(collection, body[SINGULAR[collection]], began)
            if len(made) > 1:
                raise MaybeCommitted(
                    f"{collection} {', '.join(made)} were all made since the refused request "
                    "was sent, with every field of it: which one it made cannot be told"
                )
            # The refused try committed its object before SQLite refused a later step (a
            # port, then its binding): it goes, and the create is sent again whole.
            for object_id in made:
                self.delete(collection, object_id)
            return True
        return False

    def _made_since(self, collection: str, fields: Body, began: datetime) -> Ids:
        """The ids of the objects of the create's project made since `began` whose fields
        equal the create's plain fields: the refused try's object, if it was committed."""
        plain = {k: v for k, v in fields.items() if isinstance(v, str | int | bool | None)}
        project = plain.get("tenant_id") or plain.get("project_id")
        if not project:
            raise MaybeCommitted("the create names no project to look in")
        return [
            str(found["id"])
            for found in self.list(collection, tenant_id=str(project))
            if all(found.get(k) == v for k, v in plain.items() if k in found)
            and _created_at(found) >= began
        ]

    def _records(self, error: urllib.error.HTTPError) -> Records:
        """The server's log records for the request of a 500, whole (see RECORD_LINE)."""
        request_id = error.headers.get("X-Openstack-Request-Id") if error.headers else None
        if error.code < 500 or not request_id or self.server_log is None:
            return []
        try:
            text = self.server_log.read_text(errors="replace")
        except OSError:
            return []
        records: Records = []
        current: Record | None = None
        first_fields = ""
        for line in text.splitlines():
            match = RECORD_LINE.fullmatch(line)
            if match is None:
                if current is not None:
                    current.append(line)  # a message's later line
                continue
            fields, _level, rest = match.groups()
            context = CONTEXT.match(rest)
            if context is not None:
                current = [line] if request_id in context.group(0) else None
                if current is not None:
                    records.append(current)
                first_fields = fields
            elif current is not None and fields == first_fields:
                current.append(line)  # its traceback
            else:
                current = None
        return records


def _refused_by_sqlite(records: Records) -> bool:
    """Whether the request's last ERROR record, the one that failed it, is SQLite's
    refusal (an earlier error the request logged and went on from does not count)."""
    failing = [r for r in records if (m := RECORD_LINE.fullmatch(r[0])) and m.group(2) == "ERROR"]
    return bool(failing) and any(phrase in line for line in failing[-1] for phrase in LOCKED)


def _created_at(found: Body) -> datetime:
    """Neutron's created_at ("2026-12-01T11:30:26Z")."""
    stamp = found.get("created_at")
    if not isinstance(stamp, str):
        raise MaybeCommitted(f"{found.get('id')} has no created_at to tell when it was made")
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
