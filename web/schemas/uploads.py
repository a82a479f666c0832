"""Direct-upload bodies, as `@uppy/aws-s3` reads them (docs/api.md, Direct uploads)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from web.schemas import Body


class UploadSessionOut(Body):
    companion_endpoint: str
    expires_at: int


class MultipartCreatedOut(BaseModel):
    key: str
    upload_id: str = Field(alias="uploadId")


class PartUrlOut(BaseModel):
    url: str
    expires: int
