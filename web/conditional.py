"""Conditional reads: a JSON answer tagged with a hash of its bytes, and 304 when the client holds them."""

from __future__ import annotations

import hashlib
from typing import Any, cast

from flask import Response, current_app, request


def tagged_json(body: Any, *, tag_prefix: str = "") -> Response:
    """`body` as JSON with a strong ETag of its exact bytes; 304 Not Modified when If-None-Match has it.

    The tag covers everything the body holds, signed URLs included, so it changes whenever the body
    would (a new status, a rendition, a rename, the next hour's links) and never otherwise.
    """
    # The JSON provider is typed to answer werkzeug's sans-IO base class; it builds app.response_class.
    response = cast(Response, current_app.json.response(body))
    digest = hashlib.blake2b(response.get_data(), digest_size=16).hexdigest()
    response.set_etag(f"{tag_prefix}{digest}")
    # Browsers may keep the answer but must ask again each time (If-None-Match); shared caches never keep it.
    response.headers["Cache-Control"] = "private, no-cache"
    response.make_conditional(request)  # in place: 304 and no body when If-None-Match holds the tag
    return response
