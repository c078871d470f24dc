"""The report's words: the recommendation, each ladder's verdict, the prediction's status and
the cross-host summary; and the JSON document, which carries those words next to the numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..analysis import SCORE_DIRECTIONS, LadderResult, WelchTest, finite_or_none
from ..cost_text import summary_line as cost_summary_line
from . import numbers as n
from .cost import cost_json
from .notes import idle_text, notes_text
from .quality import lines as quality_lines
from .quality import quality_json
from .search import lines as search_lines
from .search import search_json
from .words import BASIS_TEXT, describe_score, inserted

if TYPE_CHECKING:  # the recommender says its summary through this module
    from ..recommender import AdvisorReport, HostComparison

DEFAULT_PREDICTION_ADVICE = (
    "measure more configurations (other stream counts with ffmpeg-runner multi --count, "
    "resolutions or bitrates) with 3 repeats each"
)


def welch_verdict(test: WelchTest) -> str:
    """Welch's t-test of the winner against the runner-up, in one sentence."""
    winner, runner, metric = test.winner, test.runner_up, test.metric
    na, nb = test.n_winner, test.n_runner_up
    if test.significant is None:
        return (
            f"{winner} ranks ahead of {runner}, but significance cannot be tested with "
            f"{na} and {nb} valid repeats; measure at least 2 (better 3+) repeats of each."
        )
    rel = test.relative_pct
    if test.zero_spread:
        return f"{winner} and {runner} have zero spread over repeats; difference {rel:+.1f}%."
    better = "better" if SCORE_DIRECTIONS.get(metric, True) else "lower (better)"
    if test.significant:
        return (
            f"{winner} is significantly {better} than {runner} on {metric} "
            f"({rel:+.1f}%, Welch t = {test.t:.2f}, p = {test.p_value:.3g} < {test.alpha}, "
            f"{na} vs {nb} repeats)."
        )
    return (
        f"{winner} is ahead of {runner} on {metric} by {rel:+.1f}%, but the difference is NOT "
        f"significant (Welch t = {test.t:.2f}, p = {test.p_value:.3g} ≥ {test.alpha}, {na} vs "
        f"{nb} repeats); treat them as equivalent or measure more repeats."
    )


def ladder_verdict(lad: LadderResult) -> str | None:
    """The ladder's verdict; None when nothing was ranked."""
    if lad.test is not None:
        return welch_verdict(lad.test)
    if lad.winner:
        return f"{lad.winner} is the only configuration measured for this ladder."
    return None


def test_json(test: WelchTest) -> dict[str, Any]:
    return {**test.to_json(), "verdict": welch_verdict(test)}


def ladder_json(lad: LadderResult) -> dict[str, Any]:
    verdict = ladder_verdict(lad)
    test = test_json(lad.test) if lad.test else {"verdict": verdict} if verdict else None
    return {
        "ladder": lad.ladder,
        "ranking": lad.ranking,
        "winner": lad.winner,
        "runner_up": lad.runner_up,
        "test": test,
        "unranked": lad.unranked,
    }


# -- prediction -------------------------------------------------------------------------------


def _withheld_sentence(target: str, reason: str, what: str) -> str:
    name = "Power" if target == "mean_power_w" else "Energy-per-frame"
    return f"{name} prediction withheld: {reason}; {what}."


def prediction_message(block: Mapping[str, Any]) -> str:
    """Why a prediction was not fitted or is withheld, with what to measure."""
    why, target = block["why"], block["target"]
    if why["kind"] == "one_stream_count":
        return _withheld_sentence(
            target,
            f"every configuration ran {why['streams']} stream(s), so how power grows with "
            "streams cannot be learned",
            "run a few configurations with ffmpeg-runner multi --count 2 and --count 4",
        )
    if why["kind"] == "too_few":
        return _withheld_sentence(target, "too few configurations to learn from", why["detail"])
    advice = "for example, " + why["advice"] if why["advice"] else DEFAULT_PREDICTION_ADVICE
    return _withheld_sentence(
        target,
        f"the best model ({block['model']}) misses configurations it was not trained on by "
        f"{block['heldout_mape_pct']:.0f} % on average (held-out MAPE over "
        f"{why['configurations']} configurations, limit {block['limit_pct']:.0f} %)",
        advice,
    )


def cv_method(block: Mapping[str, Any]) -> str:
    return (
        f"GroupKFold by scenario ({block['cv_configurations']} configurations, "
        f"{block['cv_windows']} windows)"
    )


def prediction_block_json(block: Mapping[str, Any]) -> dict[str, Any]:
    """A prediction block with its words: ``message`` in place of ``why``, ``cv_method`` in
    place of its two counts."""
    out: dict[str, Any] = {}
    for key, value in block.items():
        if key == "why":
            out["message"] = prediction_message(block)
        elif key == "cv_configurations":
            out["cv_method"] = cv_method(block)
        elif key != "cv_windows":
            out[key] = value
    return out


def prediction_json(pred: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: prediction_block_json(v) if isinstance(v, Mapping) and "target" in v else v
        for k, v in pred.items()
    }


# -- the recommendation -----------------------------------------------------------------------


def _nothing_ranked(windows: pd.DataFrame, named: int = 3) -> str:
    """The summary's line when no configuration could be ranked: which transcode windows had a
    problem, and what it was (the first ``named`` of them; the notes list every one)."""
    tr = windows[windows["phase"] == "transcode"]
    why = [f"{r.window_id}: {r.problem}" for r in tr.itertuples() if isinstance(r.problem, str)]
    if not why:
        return "No configuration could be ranked (no complete transcode window)."
    more = f"; and {len(why) - named} more (see the notes)" if len(why) > named else ""
    return (
        f"No configuration could be ranked: {len(why)} of {len(tr)} transcode window(s) have a "
        "problem. " + "; ".join(why[:named]) + more + "."
    )


def summary(rep: AdvisorReport) -> str:
    """The recommendation in words."""
    # Quality first: it answers the question users bring (least energy at a quality); a
    # search measured it at the target itself, so it comes before the interpolated answer,
    # and without quality in the windows it is the only quality there is.
    searched = search_lines(rep.search) if rep.search else []
    lines: list[str] = [*searched]
    if rep.quality.measured or not searched:
        lines += quality_lines(rep.quality)
    m = rep.meta["rank_by"]
    if rep.quality.measured or searched:
        # The efficiency verdicts below favour fast presets; say what they leave out.
        lines.append(
            "By energy efficiency alone (picture quality not considered), ranked by "
            f"{describe_score(m)}:"
        )
    else:
        lines.append(f"Ranked by {describe_score(m)}.")
    if rep.best_overall:
        b = rep.best_overall
        lines.append(
            f"Best overall: {b['scenario']} (ladder {b['ladder']}): {m} = "
            f"{n.fmt(b[f'{m}_mean'])} ± {n.fmt(b[f'{m}_ci95'])} (95% CI, {b['n_ok']} repeats), "
            f"mean power {n.fmt(b['mean_power_w_mean'])} W [{b['power_source']}]."
        )
    else:
        lines.append(_nothing_ranked(rep.windows))
    for lad in rep.ladders:
        verdict = ladder_verdict(lad)
        if verdict:
            lines.append(f"Ladder {lad.ladder}: best {lad.winner}. {verdict}")
        if lad.unranked:
            lines.append(
                f"Ladder {lad.ladder}: not ranked (no valid data): " + ", ".join(lad.unranked)
            )
    pw = rep.prediction.get("power") if isinstance(rep.prediction, dict) else None
    if pw and pw.get("status") == "ok":
        lines.append(
            f"Power model: {pw['model']}, held-out MAPE {pw['heldout_mape_pct']:.1f}% "
            f"({cv_method(pw)}); 90% intervals from out-of-fold residuals."
        )
    elif pw:
        lines.append(prediction_message(pw))
    if rep.cost is not None:
        lines.append(cost_summary_line(rep.cost))
    return "\n".join(lines)


def host_summary(cmp: HostComparison, rank_by: str) -> str:
    """The cross-host verdicts: per scenario, the host with the least energy and the test."""
    if not cmp.verdicts:
        return (
            "No scenario ran on two or more hosts: nothing to compare. Run the same batch "
            "on each node (one runner Job per node) and pass all the manifests."
        )
    lines = []
    t = cmp.table
    for v in cmp.verdicts:
        best = t[
            (t["scenario"] == v["scenario"])
            & (t["ladder"] == v["ladder"])
            & (t["host"] == v["best_host"])
        ].iloc[0]
        lines.append(
            f"{v['scenario']}: least energy on {best['host_description']} "
            f"({rank_by} = {n.fmt(best[f'{rank_by}_mean'])} ± {n.fmt(best[f'{rank_by}_ci95'])}, "
            f"{describe_score(rank_by)}). {welch_verdict(v['test'])}"
        )
    lines.append(f"Energy basis: {cmp.energy_basis} ({BASIS_TEXT[cmp.energy_basis]}).")
    return "\n".join(lines)


def host_verdicts_json(cmp: HostComparison) -> list[dict[str, Any]]:
    """Each verdict: its test with the sentence, then which scenario and hosts it is about."""
    return [
        {**test_json(v["test"]), **{k: x for k, x in v.items() if k != "test"}}
        for v in cmp.verdicts
    ]


# -- JSON ---------------------------------------------------------------------------------------


def records(df: Any) -> list[dict[str, Any]]:
    if not isinstance(df, pd.DataFrame) or df.empty:
        return []
    return [
        {str(k): finite_or_none(v) for k, v in row.items()} for row in df.to_dict(orient="records")
    ]


def clean(obj: Any) -> Any:
    """``obj`` as JSON can hold it: frames as records, NaN and infinities as null."""
    if isinstance(obj, pd.DataFrame):
        return records(obj)
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return finite_or_none(obj)


def _scenario_records(rep: AdvisorReport) -> list[dict[str, Any]]:
    """Scenario rows with each one's quality nested (mean ± CI per metric) in place of the
    flat aggregate columns, and whether it is on the frontier."""
    qa = rep.quality
    dom = qa.dominated_by
    out = []
    for rec in records(rep.scenarios):
        for key in list(rec):
            if key.startswith(("quality_", "achieved_bitrate_bps_")):
                del rec[key]
        entry = qa.scenario_quality.get((str(rec["scenario"]), str(rec["ladder"])), {})
        rec["quality"] = clean(entry.get("quality"))
        if "quality_by_rung" in entry:
            rec["quality_by_rung"] = clean(entry["quality_by_rung"])
        rec["achieved_bitrate_bps"] = finite_or_none(entry.get("achieved_bitrate_bps"))
        name = str(rec["scenario"])
        rec["on_frontier"] = (dom[name] is None) if name in dom else None
        rec["dominated_by"] = dom.get(name)
        out.append(rec)
    return out


def meta_json(rep: AdvisorReport) -> dict[str, Any]:
    """The report's meta with the words of its settings next to them."""
    meta = inserted(rep.meta, "rank_by", "rank_by_text", describe_score(rep.meta["rank_by"]))
    basis = meta["energy_basis"]
    meta = inserted(meta, "energy_basis", "energy_basis_text", BASIS_TEXT[basis])
    meta["attribution"] = [{**i.to_json(), "note": idle_text(i)} for i in rep.idle]
    return meta


def report_dict(rep: AdvisorReport) -> dict[str, Any]:
    """The JSON document; ``schema_version`` changes only when a field changes meaning."""
    meta = meta_json(rep)
    doc: dict[str, Any] = clean(
        {
            "schema_version": meta.pop("schema_version"),
            "meta": meta,
            "summary": summary(rep),
            "quality": quality_json(rep.quality),
            "cost": cost_json(rep.cost) if rep.cost else None,
            "search": search_json(rep.search) if rep.search else None,
            "best_overall": rep.best_overall,
            "ladders": [ladder_json(lad) for lad in rep.ladders],
            "scenarios": _scenario_records(rep),
            "windows": rep.windows,
            "power_breakdown": rep.breakdown,
            "prediction": prediction_json(rep.prediction),
            "warnings": notes_text(rep.warnings),
        }
    )
    return doc
