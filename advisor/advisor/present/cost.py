"""The title cost's words and JSON: why a family is not priced, the source of the encode
energy's basis, and the cost section of the report's JSON document."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..cost import TitleCost
from ..cost_config import Assumption
from . import numbers as n
from .quality import family_reason
from .words import BASIS_TEXT

ENCODE_BASIS = "encode_energy_basis"


def target_text(cost: TitleCost) -> str:
    """``vmaf 93``; empty without a target."""
    return n.target(cost.target) if cost.target else ""


def unpriced_reason(entry: Mapping[str, Any]) -> str:
    """Why a family of the quality analysis has no cost."""
    why = entry["why"]
    if why.kind == "not_at_target":
        fam = why.about["family"]
        return str(family_reason(fam) or fam.status)
    return "no bitrate at the target"


def assumptions(cost: TitleCost) -> list[Assumption]:
    """The cost's assumptions, the encode energy's with its source in words."""
    source = (
        f"the quality analysis at {target_text(cost) or None}: energy per output minute "
        f"interpolated at the target ({BASIS_TEXT[cost.energy_basis]})"
    )
    return [
        dataclasses.replace(a, source=source) if a.name == ENCODE_BASIS else a
        for a in cost.assumptions
    ]


def cost_json(cost: TitleCost) -> dict[str, Any]:
    cheapest = cost.cheapest
    return {
        "title_minutes": cost.title_minutes,
        "views": cost.views,
        "target": target_text(cost),
        "energy_basis": cost.energy_basis,
        "delivery_model": cost.delivery_model,
        "delivery_kwh_per_gb": cost.delivery_kwh_per_gb,
        "carbon_g_per_kwh": cost.carbon_g_per_kwh,
        "currency": cost.currency,
        "reference_family": cost.reference,
        "least_total_energy_family": cheapest.family if cheapest else None,
        "frontier": [f.family for f in cost.families if f.on_frontier],
        "families": [f.to_json() for f in cost.families],
        "excluded": [{"family": e["family"], "reason": unpriced_reason(e)} for e in cost.excluded],
        "carbon_missing": cost.carbon_missing,
        "money_missing": cost.money_missing,
        "assumptions": [a.to_json() for a in assumptions(cost)],
    }
