"""What an events process runs beside its requests: the relay, the hub and the ticket store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import redis
from flask import current_app

from models.presenters import present_asset
from models.tables import Asset
from web.events.hub import BLOCK_MS, Hub
from web.events.log import EventLog
from web.events.relay import Relay
from web.events.tickets import Tickets
from web.services import Services


@dataclass
class Live:
    events: EventLog
    hub: Hub
    relay: Relay
    tickets: Tickets

    def start(self) -> Live:
        """Start the relay (active or standby) and the hub's reader; once per process, after any fork."""
        self.relay.start()
        self.hub.start()
        return self

    def stop(self) -> None:
        self.hub.stop()
        self.relay.stop()


def build_live(services: Services) -> Live:
    """The machinery for `services`; nothing runs or connects until `start`."""
    settings = services.settings
    events = EventLog(services.redis, settings)
    # The reader blocks in XREAD for BLOCK_MS on a connection of its own: its timeout must outlast that.
    reader = redis.Redis.from_url(
        settings.redis_url, socket_timeout=BLOCK_MS / 1000 + 10, socket_connect_timeout=2
    )

    def reread(asset_id: str) -> dict[str, Any] | None:
        with services.sessions() as session:
            asset = session.get(Asset, uuid.UUID(asset_id))
            return None if asset is None else present_asset(asset).signed(services.signed_url)

    return Live(
        events=events,
        hub=Hub(reader, events),
        relay=Relay(settings.database_url, events, services.signed_url, reread),
        tickets=Tickets(services.redis, settings.redis_key_prefix),
    )


def live() -> Live:
    """This app's event machinery."""
    return current_app.extensions["iskra-events"]
