"""What the report must tell besides its figures, as data.

The analysis says *what* happened (a window lacks power data, a family's quality does not rise
with bitrate, the basis fell back to gross) as a ``Note``: a kind and the values that go with
it. The presentation layer (``advisor.present.notes``) says it in words, once for every format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Note:
    """``kind`` names the fact (``window_missing``, ``not_rising``, ...); ``about`` holds its
    values (window ids, numbers, names), never words."""

    kind: str
    about: dict[str, Any] = field(default_factory=dict)


def note(kind: str, **about: Any) -> Note:
    return Note(kind, about)
