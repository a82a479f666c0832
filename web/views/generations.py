"""The caller's monthly generation quota: reserve before generating, refund what failed."""

from __future__ import annotations

from flask import Blueprint, make_response, request
from spectree import Response

from models.generations import Generations, refund, reserve
from web.auth import current_identity, signed_in_user
from web.db import db
from web.idempotency import idempotent
from web.openapi import api
from web.ratelimit import enforce_for_user, with_headers
from web.schemas import dump, epoch_ms
from web.schemas.generations import GenerationRequest, GenerationsOut

bp = Blueprint("generations", __name__, url_prefix="/me/generations")

RATE_LIMIT_CLASS = {"image": "standard", "video": "video"}


def _out(generations: Generations) -> dict:
    return dump(
        GenerationsOut(
            type=generations.type,
            used=generations.used,
            limit=generations.limit,
            remaining=generations.remaining,
            percentage=generations.percentage,
            resets_at=epoch_ms(generations.cycle_end),
        )
    )


@bp.post("/reserve")
@idempotent
@api.validate(json=GenerationRequest, resp=Response(HTTP_200=GenerationsOut), tags=["generations"])
def reserve_generations():
    """Take generations from this month's quota (429 `generation-quota-exceeded` when it would overflow)."""
    body: GenerationRequest = request.context.json  # type: ignore[attr-defined]
    decision = enforce_for_user(RATE_LIMIT_CLASS[body.type], current_identity().user_id)
    with db().begin():
        reserved = reserve(db(), signed_in_user().user_id, body.type, body.count)
    return with_headers(make_response(_out(reserved)), decision)


@bp.post("/refund")
@api.validate(json=GenerationRequest, resp=Response(HTTP_200=GenerationsOut), tags=["generations"])
def refund_generations():
    """Give back generations that were reserved but not made; the count never drops below zero."""
    body: GenerationRequest = request.context.json  # type: ignore[attr-defined]
    with db().begin():
        refunded = refund(db(), signed_in_user().user_id, body.type, body.count)
    return _out(refunded)
