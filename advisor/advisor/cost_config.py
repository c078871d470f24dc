"""The title-cost configuration (``--cost-config FILE``): prices, the carbon intensity of
electricity and the network's delivery energy, each kept with where it came from.

Published defaults are the figures the literature gives, with their sources; carbon intensity
by country comes from a packaged data set (``carbon_data``). Everything a user can get wrong
is reported at once, naming the key, the bad value and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .carbon_data import (
    CARBON_EXTRA_FIX,
    GridData,
    GridIntensity,
    finite_number,
    load_grid_data,
)
from .errors import AdvisorConfigError

ALLOCATION = "allocation"
MARGINAL = "marginal"
DELIVERY_MODELS = (ALLOCATION, MARGINAL)

# Carbon Trust (2021), "Carbon impact of video streaming", network transmission intensities.
CARBON_TRUST_FIXED_KWH_PER_GB = 0.0065
CARBON_TRUST_MOBILE_KWH_PER_GB = 0.1
CARBON_TRUST = "Carbon Trust (2021), Carbon impact of video streaming"
# Aslan, Mayers, Koomey and France (2018), "Electricity intensity of Internet data
# transmission": 0.06 kWh/GB in 2015, halving about every two years. Shown for comparison.
ASLAN_2015_KWH_PER_GB = 0.06
ASLAN = (
    "Aslan et al. (2018), Electricity intensity of Internet data transmission: 0.06 kWh/GB "
    "in 2015 for fixed-line networks, halving about every two years since 2000"
)


KEYS = (
    "currency",
    "electricity_price_per_kwh",
    "compute_price_per_vcpu_hour",
    "encode_vcpus",
    "egress_price_per_gb",
    "carbon_intensity_g_per_kwh",
    "region",
    "delivery_model",
    "delivery_kwh_per_gb",
    "delivery_marginal_kwh_per_gb",
)
MIX_KEYS = ("fixed", "mobile", "mobile_share")
EXAMPLE_FILE = "advisor/cost-config.example.json"


@dataclass(frozen=True)
class Assumption:
    """One figure the cost rests on: its value, unit, and where it came from."""

    name: str
    value: float | str | None
    unit: str
    source: str
    default: bool  # True when the cost file did not set it

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "default": self.default,
        }


@dataclass(frozen=True)
class DeliveryIntensity:
    """kWh per GB delivered: one figure, or a fixed/mobile mix."""

    kwh_per_gb: float
    fixed_kwh_per_gb: float | None = None
    mobile_kwh_per_gb: float | None = None
    mobile_share: float | None = None


@dataclass(frozen=True)
class CostConfig:
    """Prices, carbon intensity and delivery energy; None where not set."""

    currency: str | None = None
    electricity_price_per_kwh: float | None = None
    compute_price_per_vcpu_hour: float | None = None
    encode_vcpus: float | None = None
    egress_price_per_gb: float | None = None
    carbon: GridIntensity | None = None
    carbon_missing: str | None = None  # why there is no carbon intensity
    delivery_model: str = ALLOCATION
    allocation: DeliveryIntensity = field(
        default_factory=lambda: mixed_intensity(
            CARBON_TRUST_FIXED_KWH_PER_GB, CARBON_TRUST_MOBILE_KWH_PER_GB, 0.0
        )
    )
    marginal: DeliveryIntensity | None = None
    assumptions: tuple[Assumption, ...] = ()
    path: str | None = None

    @property
    def delivery(self) -> DeliveryIntensity:
        """The figure of the chosen delivery model."""
        if self.delivery_model == MARGINAL:
            assert self.marginal is not None  # load_cost_config requires it
            return self.marginal
        return self.allocation

    @property
    def money_missing(self) -> list[str]:
        """Keys that must be set for money; empty when it can be computed."""
        return [
            k
            for k, v in (
                ("electricity_price_per_kwh", self.electricity_price_per_kwh),
                ("egress_price_per_gb", self.egress_price_per_gb),
            )
            if v is None
        ]


def mixed_intensity(fixed: float, mobile: float, mobile_share: float) -> DeliveryIntensity:
    return DeliveryIntensity(
        kwh_per_gb=(1.0 - mobile_share) * fixed + mobile_share * mobile,
        fixed_kwh_per_gb=fixed,
        mobile_kwh_per_gb=mobile,
        mobile_share=mobile_share,
    )


class _Reader:
    """Reads keys of the cost document, collecting every problem with its fix."""

    def __init__(self, doc: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self.doc = doc
        self.where = where
        self.prefix = prefix  # the enclosing key, for keys inside an object
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.where}: {text}")

    def number(
        self, key: str, fix: str, *, positive: bool = False, at_most: float | None = None
    ) -> float | None:
        raw = self.doc.get(key)
        if raw is None:
            return None
        least = "more than 0" if positive else "0 or more"
        ok = finite_number(raw) and (float(raw) > 0 if positive else float(raw) >= 0)
        if ok and at_most is not None and float(raw) > at_most:
            ok = False
            least += f" and at most {at_most:g}"
        if not ok:
            self.problem(f"{self.prefix}{key} {raw!r}: give a number {least}; {fix}")
            return None
        return float(raw)

    def intensity(self, key: str, default: DeliveryIntensity | None) -> DeliveryIntensity | None:
        raw = self.doc.get(key)
        fix = (
            "write one figure in kWh per GB, e.g. 0.0065, or "
            '{"fixed": 0.0065, "mobile": 0.1, "mobile_share": 0.2}'
        )
        if raw is None:
            return default
        if isinstance(raw, Mapping):
            unknown = sorted(set(raw) - set(MIX_KEYS))
            missing = [k for k in MIX_KEYS if k not in raw]
            if unknown or missing:
                parts = []
                if missing:
                    parts.append("missing " + ", ".join(missing))
                if unknown:
                    parts.append("unknown " + ", ".join(unknown))
                self.problem(f"{key}: {'; '.join(parts)}; {fix}")
                return None
            sub = _Reader(raw, self.where, prefix=f"{key}.")
            fixed = sub.number("fixed", f"the kWh per GB of fixed networks in {key}")
            mobile = sub.number("mobile", f"the kWh per GB of mobile networks in {key}")
            share = sub.number(
                "mobile_share", f"the share of views over mobile networks in {key}", at_most=1.0
            )
            self.problems.extend(sub.problems)
            if fixed is None or mobile is None or share is None:
                return None
            return mixed_intensity(fixed, mobile, share)
        value = self.number(key, fix)
        return DeliveryIntensity(value) if value is not None else None


# the setting a cost file error names (the CLI says it as --cost-config)
COST_CONFIG = ("cost_config",)


def read_cost_document(path: Path) -> dict[str, Any]:
    """The cost file as a JSON object; AdvisorConfigError names the file and the fix."""
    fix = f"see {EXAMPLE_FILE} for the keys"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AdvisorConfigError(
            f"cost_config {str(path)!r}: no such file; pass the path of a JSON cost file "
            f"({fix}), or leave cost_config out for the published defaults",
            settings=COST_CONFIG,
        ) from None
    except OSError as exc:
        raise AdvisorConfigError(
            f"cost_config {str(path)!r}: cannot be read ({exc})", settings=COST_CONFIG
        ) from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AdvisorConfigError(
            f"cost_config {str(path)!r}: not valid JSON ({exc}); {fix}", settings=COST_CONFIG
        ) from None
    if not isinstance(doc, dict):
        raise AdvisorConfigError(
            f"cost_config {str(path)!r}: expected a JSON object of keys; {fix}",
            settings=COST_CONFIG,
        )
    return doc


GridLoader = Callable[[], GridData | None]


def load_cost_config(path: Path | None, grid_loader: GridLoader | None = None) -> CostConfig:
    """The configuration from ``path`` (None: every default); one AdvisorConfigError lists
    every problem. ``grid_loader`` returns the country data set, None when it is absent
    (default: codecarbon's, read only when a region or the world average is needed)."""
    doc = read_cost_document(path) if path is not None else {}
    return parse_cost_config(doc, str(path) if path else None, grid_loader)


def parse_cost_config(
    doc: Mapping[str, Any], path: str | None, grid_loader: GridLoader | None = None
) -> CostConfig:
    where = path or "cost defaults"
    r = _Reader(doc, where)
    # Keys starting with "_" are comments (JSON has none of its own).
    unknown = sorted(k for k in doc if k not in KEYS and not str(k).startswith("_"))
    for k in unknown:
        r.problem(f"unknown key {k!r}; the keys are {', '.join(KEYS)} (see {EXAMPLE_FILE})")
    prices = {
        k: r.number(k, f"the price in your currency per {unit}")
        for k, unit in (
            ("electricity_price_per_kwh", "kWh of encode electricity"),
            ("compute_price_per_vcpu_hour", "vCPU-hour of encoding"),
            ("egress_price_per_gb", "GB delivered"),
        )
    }
    vcpus = r.number("encode_vcpus", "the vCPUs the encode machine bills", positive=True)
    currency = doc.get("currency")
    if currency is not None and not (isinstance(currency, str) and currency.strip()):
        r.problem(f'currency {currency!r}: write the prices\' currency as text, e.g. "EUR"')
        currency = None
    if any(doc.get(k) is not None for k in prices) and "currency" not in doc:
        r.problem('currency missing: the prices need their currency, e.g. "currency": "EUR"')
    per_vcpu = prices["compute_price_per_vcpu_hour"]
    if per_vcpu is not None and vcpus is None and "encode_vcpus" not in doc:
        r.problem(
            "encode_vcpus missing: compute_price_per_vcpu_hour is charged per vCPU-hour, so give "
            'the vCPUs the encode machine bills, e.g. "encode_vcpus": 8'
        )
    model = doc.get("delivery_model", ALLOCATION)
    if model not in DELIVERY_MODELS:
        r.problem(f"delivery_model {model!r}: choose {ALLOCATION} or {MARGINAL}")
        model = ALLOCATION
    allocation = r.intensity(
        "delivery_kwh_per_gb",
        mixed_intensity(CARBON_TRUST_FIXED_KWH_PER_GB, CARBON_TRUST_MOBILE_KWH_PER_GB, 0.0),
    )
    marginal = r.intensity("delivery_marginal_kwh_per_gb", None)
    if model == MARGINAL and marginal is None and "delivery_marginal_kwh_per_gb" not in doc:
        r.problem(
            "delivery_model 'marginal' needs delivery_marginal_kwh_per_gb: the energy one more "
            "GB adds to the network, which power-model studies put far below the average "
            "figure; set it (one figure or a fixed/mobile mix), or use delivery_model "
            "'allocation'"
        )
    carbon, carbon_missing = _carbon(doc, r, grid_loader or load_grid_data)
    if r.problems:
        raise AdvisorConfigError(r.problems)
    assert allocation is not None
    config = CostConfig(
        currency=str(currency).strip() if currency else None,
        electricity_price_per_kwh=prices["electricity_price_per_kwh"],
        compute_price_per_vcpu_hour=prices["compute_price_per_vcpu_hour"],
        encode_vcpus=vcpus,
        egress_price_per_gb=prices["egress_price_per_gb"],
        carbon=carbon,
        carbon_missing=carbon_missing,
        delivery_model=str(model),
        allocation=allocation,
        marginal=marginal,
        path=path,
    )
    return CostConfig(**{**config.__dict__, "assumptions": tuple(_assumptions(config, doc))})


def _carbon(
    doc: Mapping[str, Any], r: _Reader, grid_loader: GridLoader
) -> tuple[GridIntensity | None, str | None]:
    typed = doc.get("carbon_intensity_g_per_kwh")
    region = doc.get("region")
    if typed is not None and region is not None:
        r.problem(
            "carbon_intensity_g_per_kwh and region are both set; keep one (region looks the "
            "figure up in the packaged data set, carbon_intensity_g_per_kwh is your own)"
        )
        return None, None
    if typed is not None:
        value = r.number("carbon_intensity_g_per_kwh", "grams of CO2e per kWh, e.g. 250")
        if value is None:
            return None, None
        source = f"cost file {r.where}"
        return GridIntensity(value, None, "from the cost file", None, source), None
    if region is not None and not (isinstance(region, str) and region.strip()):
        r.problem(f'region {region!r}: write an ISO 3166-1 alpha-3 country code, e.g. "FRA"')
        return None, None
    try:
        grid = grid_loader()
    except AdvisorConfigError as exc:
        if region is None:
            return None, str(exc)
        r.problems.extend(exc.problems)
        return None, None
    if region is not None:
        if grid is None:
            r.problem(
                f"region {region!r} is looked up in codecarbon's data set, which is not "
                f"installed: {CARBON_EXTRA_FIX}, or set carbon_intensity_g_per_kwh instead"
            )
            return None, None
        try:
            return grid.lookup(str(region)), None
        except AdvisorConfigError as exc:
            r.problems.extend(f"{r.where}: {p}" for p in exc.problems)
            return None, None
    world = grid.world() if grid is not None else None
    if world is None:
        why = (
            "no carbon intensity: set region (an ISO 3166-1 alpha-3 code, with the carbon "
            f"extra) or carbon_intensity_g_per_kwh in --cost-config; the default world average "
            f"comes from codecarbon's data: {CARBON_EXTRA_FIX}"
        )
        return None, why
    return world, None


def _assumptions(c: CostConfig, doc: Mapping[str, Any]) -> list[Assumption]:
    """Every figure with its source; ``default`` when the cost file did not set it."""
    user = f"cost file {c.path}" if c.path else "cost file"
    out: list[Assumption] = []

    def add(name: str, value: float | str | None, unit: str, source: str, key: str) -> None:
        out.append(Assumption(name, value, unit, source, key not in doc))

    add(
        "delivery_model",
        c.delivery_model,
        "",
        "allocation: the network's whole energy shared out per GB delivered (an average, "
        "what an inventory reports); marginal: the energy one more GB adds (networks draw "
        "nearly constant power whatever the traffic, so it is far smaller). Choosing an "
        "encoding changes the bits sent, not the network, so a decision at the margin uses "
        "the marginal figure"
        + ("" if "delivery_model" in doc else "; default: allocation, the published figures"),
        "delivery_model",
    )
    a = c.allocation
    set_alloc = "delivery_kwh_per_gb" in doc
    if a.fixed_kwh_per_gb is not None and a.mobile_share is not None:
        add(
            "delivery_kwh_per_gb.fixed",
            a.fixed_kwh_per_gb,
            "kWh/GB",
            user if set_alloc else f"{CARBON_TRUST}: fixed networks",
            "delivery_kwh_per_gb",
        )
        add(
            "delivery_kwh_per_gb.mobile",
            a.mobile_kwh_per_gb,
            "kWh/GB",
            user if set_alloc else f"{CARBON_TRUST}: mobile networks",
            "delivery_kwh_per_gb",
        )
        add(
            "delivery_kwh_per_gb.mobile_share",
            a.mobile_share,
            "",
            user
            if set_alloc
            else "no published figure: every view over fixed networks; set mobile_share to "
            "your audience's share of mobile views",
            "delivery_kwh_per_gb",
        )
    add(
        "delivery_kwh_per_gb",
        a.kwh_per_gb,
        "kWh/GB",
        (user if set_alloc else CARBON_TRUST)
        + (
            " (the mix: (1 - mobile_share) x fixed + mobile_share x mobile)"
            if a.mobile_share is not None
            else ""
        ),
        "delivery_kwh_per_gb",
    )
    m = c.marginal
    add(
        "delivery_marginal_kwh_per_gb",
        m.kwh_per_gb if m else None,
        "kWh/GB",
        user
        if m
        else "not set: the cost file's delivery_marginal_kwh_per_gb (needed for "
        "delivery_model marginal)",
        "delivery_marginal_kwh_per_gb",
    )
    out.append(
        Assumption(
            "delivery_kwh_per_gb_2015_trend",
            ASLAN_2015_KWH_PER_GB,
            "kWh/GB",
            ASLAN + "; for comparison, not used",
            True,
        )
    )
    g = c.carbon
    if g is not None:
        where = g.source + (f": {g.place}" if g.region else "")
        if g.year is not None:
            where += f", year {g.year}"
        add(
            "carbon_intensity_g_per_kwh",
            g.g_per_kwh,
            "g CO2e/kWh",
            where + "; one figure for encode and delivery electricity",
            "carbon_intensity_g_per_kwh" if "carbon_intensity_g_per_kwh" in doc else "region",
        )
    else:
        add("carbon_intensity_g_per_kwh", None, "g CO2e/kWh", str(c.carbon_missing), "region")
    for key, value, unit in (
        ("currency", c.currency, ""),
        ("electricity_price_per_kwh", c.electricity_price_per_kwh, "per kWh"),
        ("compute_price_per_vcpu_hour", c.compute_price_per_vcpu_hour, "per vCPU-hour"),
        ("encode_vcpus", c.encode_vcpus, "vCPU"),
        ("egress_price_per_gb", c.egress_price_per_gb, "per GB"),
    ):
        add(key, value, unit, user if value is not None else "not set (no published default)", key)
    out.append(
        Assumption(
            "gigabyte", 1e9, "bytes", "GB = 10^9 bytes, as the kWh/GB figures count them", True
        )
    )
    return out
