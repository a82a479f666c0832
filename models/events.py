"""Live events: every change a client can see records its event inside the transaction that makes it.

An event is a PostgreSQL NOTIFY on CHANNEL: delivered only when its transaction commits, in commit order,
never for one that rolled back. The events process relays each to the user's stream (web.events.relay).
Bodies are recorded as of the change, with their URLs left for the relay to sign (models.presenters).
"""

from __future__ import annotations

import json
import secrets
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, cast, func, literal_column, select
from sqlalchemy.orm import Session

from models.presenters import Presented, present_asset, project_body, project_urls, usage_body
from models.tables import Asset, Project, User

CHANNEL = "iskra_events"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7900


class EventType(StrEnum):
    ASSET = "asset"
    PROJECT = "project"
    USAGE = "usage"
    # Not recorded: what a stream sends a client whose Last-Event-ID is older than what is kept.
    RESET = "reset"


def record(session: Session, user_id: str, event_type: EventType, presented: Presented) -> None:
    """Queue the event for delivery at commit (dropped with the transaction if it rolls back)."""
    _notify(session, _payload(user_id, event_type, presented))


def asset_changed(session: Session, asset_id: uuid.UUID | str) -> None:
    """An `asset` event showing the asset as it now is in this transaction."""
    asset = session.execute(
        select(Asset).where(Asset.id == _uuid(asset_id)).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if asset is not None:
        asset_now(session, asset)


def asset_now(session: Session, asset: Asset) -> None:
    """An `asset` event for a row just read or returned by the statement that changed it (no re-read)."""
    payload = _payload(asset.user_id, EventType.ASSET, present_asset(asset))
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        # Long generation metadata: the relay reads the row once this transaction is visible.
        payload = json.dumps(
            {"n": secrets.token_hex(8), "u": asset.user_id, "t": EventType.ASSET, "reread": str(asset.id)}
        )
    _notify(session, payload)


def asset_deleted(session: Session, user_id: str, asset_id: uuid.UUID | str) -> None:
    record(session, user_id, EventType.ASSET, Presented({"id": str(asset_id), "status": "deleted"}))


def project_changed(session: Session, project_id: uuid.UUID | str) -> None:
    """A `project` event after a save, rename or thumbnail render, as the project now is."""
    session.execute(select(project_notification()).where(Project.id == _uuid(project_id)))


def project_notification() -> ColumnElement[Any]:
    """The NOTIFY of a project's event, as SQL over its row: for a SELECT, or the RETURNING of an UPDATE."""
    event = func.json_build_object(
        literal_column("'n'"), cast(bindparam("notification", secrets.token_hex(8)), Text),
        literal_column("'u'"), Project.user_id,
        literal_column("'t'"), literal_column(f"'{EventType.PROJECT}'"),
        literal_column("'b'"), project_body(),
        literal_column("'s'"), project_urls(),
    )  # fmt: skip
    return func.pg_notify(CHANNEL, cast(event, Text))


def project_deleted(session: Session, user_id: str, project_id: uuid.UUID | str) -> None:
    record(session, user_id, EventType.PROJECT, Presented({"id": str(project_id), "deleted": True}))


def usage_changed(session: Session, *user_ids: str) -> None:
    """A `usage` event for each user, with their usage as it now is in this transaction."""
    for user_id in user_ids:
        user = session.execute(
            select(User).where(User.user_id == user_id).execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if user is not None:
            usage_now(session, user)


def usage_now(session: Session, user: User) -> None:
    """A `usage` event for a user row just read or returned by the statement that changed it (no re-read)."""
    # models.usage reads models.generations, which records usage events: imported here, not at the top.
    from models.usage import usage_report

    record(session, user.user_id, EventType.USAGE, Presented(usage_body(usage_report(session, user))))


def decode(payload: str) -> dict[str, Any]:
    """A notification: `n` its name, `u` user, `t` type, `b` body, `s` URLs to sign; or `reread`, an asset."""
    return json.loads(payload)


def _payload(user_id: str, event_type: EventType, presented: Presented) -> str:
    # `n` names this notification, so a relay taking over knows where the last one stopped.
    event: dict[str, Any] = {"n": secrets.token_hex(8), "u": user_id, "t": event_type, "b": presented.body}
    if presented.urls:
        event["s"] = presented.urls
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


# Built once: building a statement costs more than sending it.
_NOTIFY = select(func.pg_notify(CHANNEL, bindparam("payload", type_=Text)))


def _notify(session: Session, payload: str) -> None:
    session.execute(_NOTIFY, {"payload": payload})


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
