"""Carbon intensity of electricity by country, from the data set the ``codecarbon``
distribution ships.

Its files are read through the installed distribution's file list: codecarbon itself is never
imported, so its trackers, CLI and their dependencies stay out of the advisor (and
``pip install --no-deps codecarbon`` is enough).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AdvisorConfigError

CODECARBON = "codecarbon"
ENERGY_MIX_FILE = "codecarbon/data/private_infra/global_energy_mix.json"
PER_SOURCE_FILE = "codecarbon/data/private_infra/carbon_intensity_per_source.json"
CARBON_EXTRA_FIX = (
    "install the carbon extra (pip install 'wattpush[carbon]', or pip install --no-deps "
    "codecarbon: only its data files are read)"
)


def finite_number(v: Any) -> bool:
    """A JSON number (not a bool) that is finite."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _non_negative(v: Any) -> float | None:
    return float(v) if finite_number(v) and float(v) >= 0 else None


@dataclass(frozen=True)
class GridIntensity:
    g_per_kwh: float
    region: str | None  # ISO 3166-1 alpha-3, None for a typed figure or the world average
    place: str  # "France", "world average", "from the cost file"
    year: int | None
    source: str


@dataclass(frozen=True)
class GridData:
    """Carbon intensity of electricity by country, from a packaged data set."""

    countries: Mapping[str, tuple[str, Any, Any]]  # alpha-3 -> (name, g/kWh, year) as read
    world_g_per_kwh: float | None
    world_source: str | None
    source: str  # the distribution, its version and the file

    @classmethod
    def from_documents(
        cls, energy_mix: Any, per_source: Any, source: str, world_file: str
    ) -> GridData:
        if not isinstance(energy_mix, Mapping):
            raise AdvisorConfigError(
                f"{source}: expected a JSON object of countries; {CARBON_EXTRA_FIX} in a "
                "version this advisor reads (codecarbon>=3.3), or set carbon_intensity_g_per_kwh"
            )
        countries = {
            str(code).upper(): (
                str(entry.get("country_name") or code),
                entry.get("carbon_intensity"),
                entry.get("year"),
            )
            for code, entry in energy_mix.items()
            if isinstance(entry, Mapping)
        }
        per = per_source if isinstance(per_source, Mapping) else {}
        world = _non_negative(per.get("world_average"))
        where = per.get("world_average_source")
        return cls(
            countries=countries,
            world_g_per_kwh=world,
            world_source=None
            if world is None
            else f"{world_file} world_average" + (f" (its source: {where})" if where else ""),
            source=source,
        )

    def lookup(self, region: str, key: str = "region") -> GridIntensity:
        """The intensity of one country by ISO 3166-1 alpha-3 code (or its name in the data)."""
        code = region.strip().upper()
        if code not in self.countries:
            by_name = [c for c, (name, _, _) in self.countries.items() if name.upper() == code]
            code = by_name[0] if by_name else code
        if code not in self.countries:
            raise AdvisorConfigError(
                f"{key} {region!r}: no such country in {self.source}; write an ISO 3166-1 "
                f"alpha-3 code{self._hint(region)}, or set carbon_intensity_g_per_kwh instead"
            )
        name, raw, year = self.countries[code]
        value = _non_negative(raw)
        if value is None:
            raise AdvisorConfigError(
                f"{key} {region!r}: {self.source} has no carbon intensity for {name} "
                f"(carbon_intensity = {raw!r}); set carbon_intensity_g_per_kwh instead"
            )
        return GridIntensity(
            g_per_kwh=value,
            region=code,
            place=name,
            year=int(year) if finite_number(year) else None,
            source=self.source,
        )

    def _hint(self, region: str) -> str:
        text = region.strip().upper()
        close = sorted(c for c in self.countries if text and c.startswith(text[:2]))[:4]
        if not close:
            close = [c for c in ("FRA", "DEU", "USA") if c in self.countries]
        return " such as " + ", ".join(f"{c} ({self.countries[c][0]})" for c in close)

    def world(self) -> GridIntensity | None:
        if self.world_g_per_kwh is None or self.world_source is None:
            return None
        return GridIntensity(self.world_g_per_kwh, None, "world average", None, self.world_source)


def load_grid_data() -> GridData | None:
    """codecarbon's per-country data, or None when the distribution is not installed.

    Read through the installed distribution's file list, without importing codecarbon."""
    try:
        dist = importlib.metadata.distribution(CODECARBON)
    except importlib.metadata.PackageNotFoundError:
        return None
    source = f"{CODECARBON} {dist.version}, {ENERGY_MIX_FILE}"
    mix_path = Path(str(dist.locate_file(ENERGY_MIX_FILE)))
    world_path = Path(str(dist.locate_file(PER_SOURCE_FILE)))
    try:
        mix = json.loads(mix_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdvisorConfigError(
            f"{source}: cannot be read ({exc}); reinstall codecarbon>=3.3 or set "
            "carbon_intensity_g_per_kwh in the cost file"
        ) from None
    try:
        per_source = json.loads(world_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        per_source = None  # no world average: a region or a typed figure still works
    world_file = f"{CODECARBON} {dist.version}, {PER_SOURCE_FILE}"
    return GridData.from_documents(mix, per_source, source, world_file)
