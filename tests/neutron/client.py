"""A small Neutron API client (plain HTTP), and the dump the tests compare."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
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


# SQLite's own refusals under this one eventlet server ("database is locked": another
# writer; "database table is locked": a reader in the same connection), raised as
# sqlite3.OperationalError before Neutron changed anything: its transaction is rolled back.
ROLLED_BACK = "sqlite3.OperationalError"
# The pauses before each new try: about 14 s in all, for a background task that holds
# SQLite's lock under load (the guest's qemu beside it).
RETRY_PAUSES = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 4.0, 4.0)
LOGGED_LINES = 40


@dataclass
class NeutronClient:
    endpoint: str
    """The API root, e.g. http://127.0.0.1:PORT/v2.0"""
    server_log: Path | None = None
    """The server's log: where a 500 is told apart from SQLite's lock (see request)."""

    def request(self, method: str, path: str, body: Body | None = None) -> Body:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(len(RETRY_PAUSES) + 1):
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
                logged = self._logged(error)
                if attempt < len(RETRY_PAUSES) and any(ROLLED_BACK in line for line in logged):
                    # SQLite refused before Neutron changed anything: the request is sent
                    # again. Any other 500 is Neutron's answer.
                    time.sleep(RETRY_PAUSES[attempt])
                    continue
                try:
                    fault = json.loads(raw)["NeutronError"]
                    kind, message = fault["type"], fault["message"]
                except (ValueError, KeyError, TypeError):
                    kind, message = error.reason, raw
                if error.code >= 500 and logged:
                    # Neutron's 500 body says nothing; its log says why.
                    message += "\nneutron-server's log for this request:\n" + "\n".join(
                        logged[:LOGGED_LINES]
                    )
                raise NeutronError(method, path, error.code, str(kind), str(message)) from None
        result: Body = json.loads(text) if text else {}
        return result

    def _logged(self, error: urllib.error.HTTPError) -> list[str]:
        """The server's log lines for the request of a 500: those naming its request id,
        and the traceback lines that follow them (oslo.log repeats the record's prefix on
        each traceback line, but not the request id)."""
        request_id = error.headers.get("X-Openstack-Request-Id") if error.headers else None
        if error.code < 500 or not request_id or self.server_log is None:
            return []
        logged: list[str] = []
        record_prefix = None
        for line in self.server_log.read_text(errors="replace").splitlines():
            if request_id in line:
                logged.append(line)
                # "<date> <time> <pid> <LEVEL> <logger> [<context>] ...": the traceback's
                # lines start with the same first five fields.
                record_prefix = " ".join(line.split(" ", 5)[:5]) + " "
            elif record_prefix is not None and line.startswith(record_prefix):
                logged.append(line)
            else:
                record_prefix = None
        return logged

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
