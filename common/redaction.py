"""Keys and the master key never reach a message, a log or a file other than the result file."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from litellm_client import redact

_SECRETS: list[str] = []  # the master key, once known


class _Redactor(logging.Filter):
    """Whatever logged it, a record leaves with its secrets hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = hide(record.getMessage())
        record.args = None
        return True


def hide(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return redact(text)


def setup_logging(debug: bool, *, secrets: Sequence[str]) -> None:
    _SECRETS[:] = [secret for secret in secrets if secret]
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Redactor())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
