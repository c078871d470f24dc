"""Stale markers by set arithmetic on series handle ids."""

from __future__ import annotations

from collections.abc import Set


class StaleTracker:
    """Which series were live at the last update and are not now.

    Used by the pipeline for ``auto_stale`` clients (scrape semantics), and by clients that
    send some series only now and then: pass the ids of this tick's live series, get back the
    ids to end with a stale marker. The live set is kept, not copied, so pass a set you do not
    mutate afterwards (a ``SeriesSet.idset`` is frozen).
    """

    __slots__ = ("_live",)

    def __init__(self) -> None:
        self._live: Set[int] = frozenset()

    @property
    def live(self) -> Set[int]:
        return self._live

    def update(self, live: Set[int]) -> Set[int]:
        previous, self._live = self._live, live
        if previous is live or not previous:
            return frozenset()
        return previous - live

    def forget(self, ids: Set[int]) -> None:
        """Series ended by other means (an explicit stale marker): no marker for them later."""
        self._live = self._live - ids
