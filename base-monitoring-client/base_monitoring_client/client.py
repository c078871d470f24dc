"""The plug-in interface: subclass MonitoringClient and implement collect()."""

from __future__ import annotations

from collections.abc import Iterable

from .sample import Sample


class MonitoringClient:
    """A source of samples. The framework owns threads, batching, retries and shutdown.

    Life cycle: ``setup()`` once, then ``collect(now_ns)`` every SAMPLE_INTERVAL_S on the
    ``sampler`` thread, ``process()`` on the ``processor`` thread for each collected tick, and
    ``close()`` once at shutdown. ``now_ns`` is the wall-clock time of the tick in nanoseconds;
    use ``now_ns // 1_000_000`` as the timestamp of what you read at that tick.
    """

    #: job label of every series; the console script's name by convention.
    name: str = "monitoring-client"
    #: When True the framework sends a stale marker for any series that was present in the
    #: previous tick and is missing from this one (scrape semantics). Clients that emit some
    #: series only now and then set this False and send ``Sample.stale`` themselves.
    auto_stale: bool = True

    def setup(self) -> None:
        """Open devices. Raise ConfigError / DeviceUnavailableError with a fix-it hint."""

    def collect(self, now_ns: int) -> Iterable[Sample]:
        raise NotImplementedError(f"{type(self).__name__} must implement collect()")

    def process(self, samples: list[Sample]) -> list[Sample]:
        """Optional second stage (derive rates, convert units); runs off the sampler thread."""
        return samples

    def close(self) -> None:
        """Release devices. Called once, also after a failed setup."""
