"""The caller's own account: who they are and what they have used."""

from __future__ import annotations

from flask import Blueprint
from spectree import Response

from models.plans import get_plan
from models.presenters import usage_body
from models.usage import usage_report
from web.auth import signed_in_user
from web.db import db
from web.openapi import api
from web.schemas import dump, epoch_ms
from web.schemas.me import MeOut, UsageOut

bp = Blueprint("me", __name__, url_prefix="/me")


@bp.get("")
@api.validate(resp=Response(HTTP_200=MeOut), tags=["me"])
def get_me():
    """The caller's account, created on first sight with its first project."""
    with db().begin():
        user = signed_in_user()
        plan = get_plan(db(), user.tier)
    return dump(
        MeOut(
            user_id=user.user_id,
            email=user.email,
            tier=user.tier,
            storage_used_bytes=user.storage_used_bytes,
            storage_quota_bytes=plan.storage_quota_bytes,
            max_upload_bytes=plan.max_upload_bytes,
            images_used_in_period=user.images_used_in_period,
            videos_used_in_period=user.videos_used_in_period,
            billing_cycle_start=epoch_ms(user.billing_cycle_start),
            billing_cycle_end=epoch_ms(user.billing_cycle_end),
            created_at=epoch_ms(user.created_at),
        )
    )


@bp.get("/usage")
@api.validate(resp=Response(HTTP_200=UsageOut), tags=["me"])
def get_usage():
    """Storage and monthly generation usage against the caller's plan."""
    with db().begin():
        report = usage_report(db(), signed_in_user())
    return usage_body(report)
