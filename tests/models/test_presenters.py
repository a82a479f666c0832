"""Bodies as clients see them: one builder for the API's answers and the live events."""

from __future__ import annotations

import uuid

from pydantic.alias_generators import to_camel

from models.asset_lifecycle import create_upload
from models.presenters import GENERATION_FIELDS, Presented, present_asset
from models.users import ensure_user
from web.schemas.assets import AssetOut, GenerationMetadata


def test_the_generation_fields_shown_are_those_the_api_accepts():
    assert list(GENERATION_FIELDS) == list(GenerationMetadata.model_fields)


def test_signing_fills_each_url_in_place_and_leaves_the_unsigned_body_alone():
    presented = Presented(
        {"id": "a", "urls": {"original": None, "thumbnail": None}, "thumbnailUrl": None},
        {
            "urls.original": ("k1", "image/png"),
            "urls.thumbnail": (None, "image/webp"),
            "thumbnailUrl": ("k2", "x"),
        },
    )

    signed = presented.signed(
        lambda key, content_type: None if key is None else f"/files/{key}?{content_type}"
    )

    assert signed == {
        "id": "a",
        "urls": {"original": "/files/k1?image/png", "thumbnail": None},
        "thumbnailUrl": "/files/k2?x",
    }
    assert presented.body["urls"]["original"] is None


def test_an_asset_body_matches_the_documented_schema(session):
    ensure_user(session, "user_presented")
    asset = create_upload(
        session, asset_id=uuid.uuid4(), user_id="user_presented", asset_type="image", storage_key="k",
        mime_type="image/png", size_bytes=5, generation={"prompt": "p", "seed": 7},
    )  # fmt: skip

    body = present_asset(asset).signed(lambda key, _type: key and f"/files/{key}")

    assert AssetOut.model_validate(body).model_dump(mode="json", by_alias=True) == body
    assert body["metadata"] == {to_camel(name): None for name in GENERATION_FIELDS} | {
        "prompt": "p",
        "seed": 7,
    }
