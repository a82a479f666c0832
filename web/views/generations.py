"""The caller's monthly generation quota: reserve before generating, refund what a reservation still holds."""

from __future__ import annotations

from flask import Blueprint, make_response, request
from spectree import Response

from models.generations import Generations
from models.reservations import refund, reserve
from web.auth import current_identity, signed_in_user
from web.db import db
from web.idempotency import idempotent
from web.openapi import api
from web.ratelimit import enforce_for_user, with_headers
from web.schemas import dump, epoch_ms
from web.schemas.generations import (
    GenerationRequest,
    RefundOut,
    RefundRequest,
    ReservationOut,
)

bp = Blueprint("generations", __name__, url_prefix="/me/generations")

RATE_LIMIT_CLASS = {"image": "standard", "video": "video"}


def _counters(generations: Generations) -> dict:
    """The counter fields `reserve` and `refund` both answer with."""
    return {
        "type": generations.type,
        "used": generations.used,
        "limit": generations.limit,
        "remaining": generations.remaining,
        "percentage": generations.percentage,
        "resets_at": epoch_ms(generations.cycle_end),
    }


@bp.post("/reserve")
@idempotent
@api.validate(json=GenerationRequest, resp=Response(HTTP_200=ReservationOut), tags=["generations"])
def reserve_generations():
    """Take generations from this month's quota under a reservation held for an hour (429 when full)."""
    body: GenerationRequest = request.context.json  # type: ignore[attr-defined]
    decision = enforce_for_user(RATE_LIMIT_CLASS[body.type], current_identity().user_id)
    with db().begin():
        reserved = reserve(db(), signed_in_user().user_id, body.type, body.count)
    out = ReservationOut(
        **_counters(reserved.generations),
        reservation_id=str(reserved.reservation_id),
        expires_at=epoch_ms(reserved.expires_at),
    )
    return with_headers(make_response(dump(out)), decision)


# No rate-limit class: a refund can only give back units of the caller's own open reservation, so what
# refunds return is bounded by what reservations took, and those are rate limited.
@bp.post("/refund")
@api.validate(
    json=RefundRequest, resp=Response("HTTP_404", "HTTP_409", HTTP_200=RefundOut), tags=["generations"]
)
def refund_generations():
    """Give back what a reservation still holds (404 unknown, 409 `reservation-closed`, 422 type mismatch)."""
    body: RefundRequest = request.context.json  # type: ignore[attr-defined]
    with db().begin():
        refunded = refund(db(), signed_in_user().user_id, body.reservation_id, body.count, body.type)
    out = RefundOut(
        **_counters(refunded.generations),
        reservation_id=str(refunded.reservation_id),
        refunded=refunded.refunded,
    )
    return dump(out)
