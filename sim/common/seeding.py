"""Seeds derived from names: the same integer in every process and run.

Python's ``hash`` is salted per process, so it cannot seed anything that must reproduce.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_int(*parts: Any) -> int:
    """A 32-bit integer derived from ``parts`` (JSON-encoded, then SHA-256)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
