"""The one error media functions raise for input they refuse."""

CODES = frozenset(
    {
        "unsupported-format",
        "corrupt",
        "too-many-pixels",
        "too-large-dimensions",
        "too-many-frames",
        "too-long",
        "no-video-stream",
        "timeout",
        "empty",
        "type-mismatch",
        "too-large",
    }
)


class MediaRejected(Exception):
    """The input was refused; `code` is the machine code recorded on the asset row."""

    def __init__(self, code: str, detail: str = "") -> None:
        if code not in CODES:
            raise ValueError(f"unknown media rejection code {code!r}")
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
