"""The plug-in interface: subclass MonitoringClient and implement collect()."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self

from .config import ClientConfig, Setting
from .hostinfo import HostInfo, read_host_info
from .sample import Sample
from .series import Series, SeriesSet, SeriesTable


class MonitoringClient:
    """A source of samples. The framework owns threads, batching, retries and shutdown.

    Life cycle: ``setup()`` once, then ``collect(now_ns)`` every SAMPLE_INTERVAL_S on the
    ``sampler`` thread, and ``close()`` once at shutdown. ``now_ns`` is the wall-clock time of
    the tick in nanoseconds.

    A client whose tick is mostly parsing can split ``collect()`` in two: ``read(now_ns)``
    only captures the raw state at the tick (file contents, counters) and returns it;
    ``decode(now_ns, raw)`` turns it into values, like ``collect()``, later and in order on
    the thread that batches (just before the push, when many ticks are decoded back to back
    and the code runs warm). Timestamps and values are the same as with ``collect()``; only
    ``read()`` costs the tick. ``read()`` must not set handles.

    The fast way to report values: declare handles once (``self.handle(...)``,
    ``self.handle_set(...)``), then set them in ``collect()`` and return nothing; release a
    handle (``self.release(...)``) once its series has ended for good. Returning
    ``Sample`` objects also works (each is routed through a cached handle); ``process()``, when
    overridden, gets them on the ``batcher`` thread.
    """

    #: job label of every series; the console script's name by convention.
    name: str = "monitoring-client"
    #: When True the framework sends a stale marker for any series that was present in the
    #: previous tick and is missing from this one (scrape semantics). Clients that emit some
    #: series only now and then set this False and end series themselves (``handle.stale()``,
    #: ``Sample.stale``, or a ``StaleTracker``).
    auto_stale: bool = True
    #: the client's own settings (environment variable + flag each), on top of the base ones
    settings: ClassVar[tuple[Setting, ...]] = ()
    #: what ``--help`` says the client does
    description: ClassVar[str] = ""

    @classmethod
    def from_settings(cls, config: ClientConfig, values: Mapping[str, Any]) -> Self:
        """Build the client from parsed settings (keys: lower-case variable names) and
        extra flags; raise ConfigError naming the setting when something does not fit."""
        return cls()

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Extra command-line flags that are not settings (none by default)."""

    @property
    def series_table(self) -> SeriesTable:
        """This client's handles (made on first use: subclasses need not call __init__)."""
        table: SeriesTable | None = self.__dict__.get("_series_table")
        if table is None:
            table = SeriesTable()
            self.__dict__["_series_table"] = table
        return table

    def handle(self, name: str, labels: Mapping[str, str] | None = None) -> Series:
        """The handle of one series, validated and encoded on first use, then cached."""
        return self.series_table.series(name, labels)

    def handle_set(
        self, name: str | Sequence[str], label_sets: Iterable[Mapping[str, str]]
    ) -> SeriesSet:
        """Handles of a block of series set together each tick with one array of values."""
        return self.series_table.series_set(name, label_sets)

    def release(self, handle: Series | SeriesSet) -> None:
        """Forget a series that has ended for good (in ``collect()``, after its last value or
        stale marker): clients that make series as they go stay bounded in memory."""
        self.series_table.release(handle)

    def setup(self) -> None:
        """Open devices. Raise ConfigError / DeviceUnavailableError with a fix-it hint."""

    def collect(self, now_ns: int) -> Iterable[Sample] | None:
        """The tick's values: set handles (return nothing) or return Samples. A client that
        implements ``read()`` and ``decode()`` instead gets both called here."""
        if not self.splits_ticks:
            raise NotImplementedError(
                f"{type(self).__name__} must implement collect(), or read() and decode()"
            )
        return self.decode(now_ns, self.read(now_ns))

    def read(self, now_ns: int) -> Any:
        """Split ticks: capture the tick's raw state (no handles set here)."""
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def decode(self, now_ns: int, raw: Any) -> Iterable[Sample] | None:
        """Split ticks: ``read()``'s result for the tick at ``now_ns`` into values, as
        ``collect()`` would; called in tick order, off the sampler thread."""
        raise NotImplementedError(f"{type(self).__name__} must implement decode()")

    @property
    def splits_ticks(self) -> bool:
        """True when the client implements ``read()`` (and ``decode()``)."""
        return type(self).read is not MonitoringClient.read

    def process(self, samples: list[Sample]) -> list[Sample]:
        """Optional second stage for Samples (derive rates, convert units); runs on the batcher
        thread, off the sampler's. Values set through handles do not pass here."""
        return samples

    def host_info(self) -> HostInfo:
        """What machine this is, pushed as ``wattpush_host_info`` after ``setup()``.

        Override to add what only this client knows (the GPU client adds the GPU model)."""
        return read_host_info()

    def close(self) -> None:
        """Release devices. Called once, also after a failed setup."""
