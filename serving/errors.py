"""The one exception type for a client's mistake: it carries its HTTP status and a stable code.

``serving.inputs`` raises it; ``serving.http`` turns it into a JSON body ``{"code", "message"}``. A client's
mistake is never a 500.
"""

from __future__ import annotations


class ClientError(Exception):
    """A request this model cannot answer, with what was received and what was expected.

    Attributes:
        status: the HTTP status (400 unparsable, 413 too large, 422 well-formed but wrong for this model).
        code: a short machine-readable name, stable across releases (``invalid_json``, ``wrong_row_shape``).
        message: a sentence for a person: what was wrong and what is expected.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
