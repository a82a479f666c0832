"""One open stream as server-sent events: `retry:`, replay after Last-Event-ID or one `reset`, live, pings."""

from __future__ import annotations

import queue
from collections.abc import Iterator

from models.events import EventType
from web.events.hub import Subscription
from web.events.log import Entry, EventLog, id_key

RETRY_MS = 3000
PING = ": ping\n\n"


def frame(item: Entry) -> str:
    return f"id: {item.id}\nevent: {item.type}\ndata: {item.data}\n\n"


def reset_frame(latest_id: str) -> str:
    # An empty id clears the client's Last-Event-ID, so a reconnect does not ask for the lost range again.
    event_id = "" if latest_id == "0-0" else latest_id
    return f"id: {event_id}\nevent: {EventType.RESET}\ndata: {{}}\n\n"


class Opening:
    """What a stream sends before it goes live, decided before the response starts (so errors are 503s)."""

    def __init__(self, events: EventLog, subscription: Subscription, last_event_id: str | None) -> None:
        self.subscription = subscription
        self.replay: list[Entry] = []
        self.reset = False
        if last_event_id:
            if events.holds(subscription.user_id, last_event_id):
                self.replay = events.after(subscription.user_id, last_event_id)
            else:
                self.reset = True


def event_stream(opening: Opening, ping_seconds: float) -> Iterator[str]:
    """The stream's text; ends when the hub closes it or the client goes (the server stops writing)."""
    subscription = opening.subscription
    yield f"retry: {RETRY_MS}\n\n"
    sent = subscription.after
    if opening.reset:
        yield reset_frame(subscription.after)
    for replayed in opening.replay:
        yield frame(replayed)
        sent = max(sent, replayed.id, key=id_key)
    while True:
        try:
            item = subscription.queue.get(timeout=ping_seconds)
        except queue.Empty:
            yield PING
            continue
        if item is None:  # the hub closed this stream (CLOSED)
            return
        # The replay and the hub overlap around the moment of subscribing: each id goes out once.
        if id_key(item.id) <= id_key(sent):
            continue
        yield frame(item)
        sent = item.id
