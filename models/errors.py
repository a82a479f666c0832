"""The domain's refusals; the edges map them to problem+json in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable machine type, an HTTP status and a human title."""

    type: str = "internal-error"
    status: int = 500
    title: str = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadRequest(DomainError):
    type, status, title = "bad-request", 400, "Bad request"


class ValidationFailed(DomainError):
    type, status, title = "validation-failed", 422, "The request body is not valid"


class Unauthorized(DomainError):
    type, status, title = "unauthorized", 401, "Authentication required"


class NotFound(DomainError):
    type, status, title = "not-found", 404, "Not found"


class Conflict(DomainError):
    type, status, title = "conflict", 409, "Conflict"


class TooManyProjects(Conflict):
    type, title = "too-many-projects", "Project limit reached"


class IdempotencyKeyInUse(Conflict):
    type, title = "idempotency-key-in-use", "A request with this Idempotency-Key is still running"


class ReservationClosed(Conflict):
    type, title = "reservation-closed", "The reservation holds nothing more"


class PatchConflict(Conflict):
    type, title = "patch-conflict", "The patch does not apply to the current state"


class UploadCompleting(Conflict):
    type, title = "upload-completing", "This upload is being completed by another request"


class PreconditionFailed(DomainError):
    type, status, title = "revision-mismatch", 412, "The project changed since it was read"


class PreconditionRequired(DomainError):
    type, status, title = "precondition-required", 428, "This change needs If-Match"


class PayloadTooLarge(DomainError):
    type, status, title = "payload-too-large", 413, "The file or body is too large"


class UnsupportedMediaType(DomainError):
    type, status, title = "unsupported-media-type", 415, "This type of file is not accepted"


class InvalidMedia(DomainError):
    type, status, title = "invalid-media", 422, "The media breaks the limits"


class InvalidIdempotencyKey(BadRequest):
    type, title = "invalid-idempotency-key", "The Idempotency-Key header is not valid"


class IdempotencyKeyReused(DomainError):
    type, status, title = "idempotency-key-reused", 422, "This Idempotency-Key was used for another request"


class QuotaExceeded(DomainError):
    type, status, title = "quota-exceeded", 507, "Storage quota exceeded"


class GenerationQuotaExceeded(DomainError):
    type, status, title = "generation-quota-exceeded", 429, "Monthly generation quota exceeded"


class RateLimited(DomainError):
    type, status, title = "rate-limited", 429, "Too many requests"


class ServiceUnavailable(DomainError):
    type, status, title = "service-unavailable", 503, "A dependency is unavailable"


class StorageError(Exception):
    """A storage backend failed; transient unless it says otherwise."""


class ObjectMissing(StorageError):
    """The object asked for does not exist."""


class InvalidDownloadLink(DomainError):
    type, status, title = "invalid-download-link", 403, "The download link is invalid or has expired"


class RateLimiterUnavailable(ServiceUnavailable):
    type, title = "rate-limiter-unavailable", "Rate limits cannot be checked"


class IdempotencyUnavailable(ServiceUnavailable):
    type, title = "idempotency-unavailable", "Idempotency keys cannot be checked"
