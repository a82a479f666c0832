"""`POST /v1/events/ticket` and `GET /v1/events`: the caller's live events as server-sent events."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, request

from models.errors import ServiceUnavailable
from web.api import refuse_credential, verify_bearer
from web.events.live import live
from web.events.stream import Opening, event_stream
from web.services import services

bp = Blueprint("events", __name__, url_prefix="/v1/events")


@bp.post("/ticket")
def issue_ticket():
    """A single-use ticket, valid 60 s, for `GET /v1/events?ticket=` (EventSource sends no headers)."""
    identity = verify_bearer()
    ticket, expires_at = live().tickets.issue(identity.user_id)
    return {"ticket": ticket, "expiresAt": expires_at}, 201


@bp.get("")
def stream():
    """The caller's events from now on (or after `Last-Event-ID`), with a ping comment when idle."""
    user_id = _stream_user()
    last_event_id = request.headers.get("Last-Event-ID") or request.args.get("lastEventId")
    machinery = live()
    try:
        subscription = machinery.hub.subscribe(user_id)
    except redis.RedisError:
        raise ServiceUnavailable("The event stream is unavailable; try again.") from None
    try:
        opening = Opening(machinery.events, subscription, last_event_id)
    except redis.RedisError:
        machinery.hub.unsubscribe(subscription)
        raise ServiceUnavailable("The event stream is unavailable; try again.") from None
    ping = services().settings.events_ping_seconds
    response = Response(
        event_stream(opening, ping),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(lambda: machinery.hub.unsubscribe(subscription))
    return response


def _stream_user() -> str:
    """Who the stream is for: a ticket's user (`?ticket=`), else the bearer token's; 401 otherwise."""
    ticket = request.args.get("ticket")
    if ticket is None:
        return verify_bearer().user_id
    try:
        user_id = live().tickets.redeem(ticket)
    except redis.RedisError:
        raise ServiceUnavailable("The event stream is unavailable; try again.") from None
    if user_id is None:
        raise refuse_credential("The ticket is unknown, used or expired.")
    return user_id
