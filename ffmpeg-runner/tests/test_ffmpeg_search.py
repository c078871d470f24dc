"""The target-quality search on synthetic quality curves: monotone ones (it finds the setting
in few probes), noisy locally non-monotone ones (it still ends within --max-probes and reports
the closest probe), unreachable and exceeded targets, failed probes, bitrate domains."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from base_monitoring_client import InvalidValue
from ffmpeg_runner.search import (
    Domain,
    Search,
    Target,
    default_bitrate_range,
    parse_range,
    parse_target,
    pchip_slopes,
    run_search,
    solve_pchip,
    transform,
)

CRF = Domain.quality_scale("crf", 0, 51)  # index 0 = crf 51 (cheapest) .. 51 = crf 0


def vmaf_of_crf(crf: float) -> float:
    """A realistic x264 curve: linear in -ln(1 - vmaf/100), 91.2 at crf 23."""
    return 100.0 * (1.0 - math.exp(-(4.5 - 0.09 * crf)))


def logistic_vmaf(crf: float) -> float:
    """A curve of another shape: saturating at both ends, 50 at crf 32."""
    return 100.0 / (1.0 + math.exp((crf - 32.0) / 5.0))


def curve(score_of_value: Callable[[float], float], domain: Domain = CRF) -> Callable[[int], float]:
    return lambda index: score_of_value(domain.values[index])


def search(
    measure: Callable[[int], float | None],
    target: float,
    *,
    domain: Domain = CRF,
    tolerance: float = 0.5,
    max_probes: int = 8,
) -> Search:
    return run_search(
        domain, Target("vmaf", target), measure, tolerance=tolerance, max_probes=max_probes
    )


def step_gap(score_of_value: Callable[[float], float], crf: float) -> float:
    return abs(score_of_value(crf) - score_of_value(crf + 1))


@pytest.mark.parametrize("shape", [vmaf_of_crf, logistic_vmaf])
@pytest.mark.parametrize("target", [30.0, 55.0, 70.0, 80.0, 88.0, 91.0, 93.0, 95.0, 97.0])
def test_monotone_curves_are_solved_in_at_most_six_probes(
    shape: Callable[[float], float], target: float
) -> None:
    if not shape(51) < target < shape(0):
        pytest.skip("target outside this curve's range")
    s = search(curve(shape), target)
    result = s.outcome()
    assert result.status == "found", result.message
    assert len(s.steps) <= 6, [CRF.text(p.index) for p in s.steps]
    assert result.chosen is not None
    crf = CRF.values[result.chosen]
    # Within the tolerance, or the closer end of a one-step bracket.
    assert abs(shape(crf) - target) <= max(0.5, step_gap(shape, crf) / 2 + 1e-9)
    assert len({p.index for p in s.steps}) == len(s.steps)  # no setting probed twice


def test_the_first_probe_is_mid_range_and_interpolation_hits_a_linear_curve() -> None:
    s = search(curve(vmaf_of_crf), 91.2)
    assert CRF.text(s.steps[0].index) == "crf 26"
    result = s.outcome()
    assert CRF.text(result.chosen or 0) == "crf 23"
    assert len(s.steps) <= 3
    assert "within ±0.5 of vmaf=91.2" in result.message


@pytest.mark.parametrize("seed", range(40))
def test_noisy_non_monotone_curves_end_within_max_probes_with_the_closest_probe(
    seed: int,
) -> None:
    rng = random.Random(seed)
    noise = {crf: rng.uniform(-1.5, 1.5) for crf in range(52)}  # > the 0.8 per CRF step at 93

    def noisy(crf: float) -> float:
        return vmaf_of_crf(crf) + noise[round(crf)]

    target = rng.uniform(75.0, 96.0)
    max_probes = rng.choice([3, 5, 8])
    s = search(curve(noisy), target, max_probes=max_probes)
    result = s.outcome()
    assert len(s.steps) <= max_probes
    assert len({p.index for p in s.steps}) == len(s.steps)
    assert result.status in ("found", "unreachable", "exceeded")
    if result.status == "found":
        closest = min(s.steps, key=lambda p: (abs((p.score or 0) - target), p.index))
        assert result.chosen == closest.index
        assert CRF.text(closest.index) in result.message


def test_a_noisy_inversion_is_not_a_bracket() -> None:
    # crf 26 scores above the target, crf 19 below it (noise): no lower bound below crf 26.
    scores = {26.0: 94.0, 19.0: 92.0}
    s = Search(CRF, Target("vmaf", 93.0))
    for crf, score in scores.items():
        s.record(CRF.values.index(crf), score)
    low, high = s.bracket()
    assert (low, high) == (None, CRF.values.index(26.0))
    nxt = s.next_index()
    assert nxt is not None and CRF.values[nxt] > 26  # cheaper than the probe above the target


def test_an_unreachable_target_probes_the_best_end_and_names_the_best_score() -> None:
    def capped(crf: float) -> float:
        return min(95.0, vmaf_of_crf(crf))

    s = search(curve(capped), 99.5)
    result = s.outcome()
    assert result.status == "unreachable" and result.chosen is None
    assert s.steps[-1].index == CRF.size - 1  # crf 0, the best setting, was tried
    assert result.message.startswith("best vmaf 95 at crf 13 stays below vmaf=99.5")
    assert result.message.endswith("(the best setting in range, crf 0, scores 95)")
    assert len(s.steps) <= 8


def test_an_exceeded_target_probes_the_cheapest_end() -> None:
    s = search(curve(lambda crf: max(40.0, vmaf_of_crf(crf))), 20.0)
    result = s.outcome()
    assert result.status == "exceeded" and result.chosen is None
    assert any(p.index == 0 for p in s.steps)
    assert "even the cheapest setting probed, crf 51, scores vmaf" in result.message


def test_the_last_probe_allowed_decides_the_status() -> None:
    # Two probes: the mid point, then the end that must bracket the target or rule it out.
    s = search(curve(vmaf_of_crf), 99.5, max_probes=2)
    assert [CRF.text(p.index) for p in s.steps] == ["crf 26", "crf 0"]
    assert s.outcome().status == "unreachable"
    s = search(curve(vmaf_of_crf), 93.0, max_probes=2)
    result = s.outcome()
    assert result.status == "found" and "--max-probes 2 reached" in result.message


def test_a_failed_probe_ends_the_search_as_failed() -> None:
    calls: list[int] = []

    def broken(index: int) -> float | None:
        calls.append(index)
        return None if len(calls) == 2 else vmaf_of_crf(CRF.values[index])

    s = search(broken, 93.0)
    assert len(calls) == 2
    assert s.outcome().status == "failed"


def test_bitrate_domains_are_searched_in_log_bitrate() -> None:
    low, high = default_bitrate_range(640, 360, 25)
    assert (low, high) == (29_000, 1_728_000)
    domain = Domain.bitrates(low, high)
    ratios = [b / a for a, b in zip(domain.values, domain.values[1:], strict=False)]
    assert all(1.05 < r < 1.12 for r in ratios)  # 1/8 octave, rounded to kb/s

    def vmaf_of_bps(bps: float) -> float:
        return 100.0 * (1.0 - math.exp(-(0.55 * math.log2(bps / 20_000))))

    s = search(curve(vmaf_of_bps, domain), 90.0, domain=domain)
    result = s.outcome()
    assert result.status == "found" and len(s.steps) <= 6
    assert result.chosen is not None
    assert abs(vmaf_of_bps(domain.values[result.chosen]) - 90.0) <= 0.8
    assert domain.text(0) == "29k"


def test_targets_and_ranges_are_parsed_with_the_fix() -> None:
    assert parse_target("VMAF=93") == Target("vmaf", 93.0)
    assert parse_target("ssim=0.98") == Target("ssim", 0.98)
    for bad, fix in (
        ("vmaf93", "write METRIC=VALUE"),
        ("bitrate=3", "write METRIC=VALUE"),
        ("vmaf=120", r"vmaf targets lie in \(0, 100\]"),
        ("ssim=2", "write e.g. ssim=0.98"),
        ("psnr=x", "psnr targets lie in"),
    ):
        with pytest.raises(InvalidValue, match=fix):
            parse_target(bad)
    assert parse_range("18:40", "crf") == (18.0, 40.0)
    assert parse_range("100k:4M", "bitrate") == (100_000.0, 4_000_000.0)
    with pytest.raises(InvalidValue, match="LOW must be below HIGH"):
        parse_range("40:18", "crf")
    with pytest.raises(InvalidValue, match="e.g. 100k:4M"):
        parse_range("1M", "bitrate")


def test_the_transform_makes_vmaf_linear_and_keeps_psnr() -> None:
    a, b, c = (transform("vmaf", vmaf_of_crf(x)) for x in (10, 20, 30))
    assert b - a == pytest.approx(c - b)
    assert transform("psnr", 40.0) == 40.0
    assert math.isfinite(transform("vmaf", 100.0)) and math.isfinite(transform("ssim", 1.0))


def test_the_monotone_cubic_never_overshoots_and_inverts_exactly() -> None:
    xs = [0.0, 1.0, 2.0, 3.0, 6.0]
    ys = [0.0, 0.1, 3.0, 3.1, 3.2]  # steep then flat: a plain cubic spline would overshoot
    slopes = pchip_slopes(xs, ys)
    assert all(d >= 0 for d in slopes)
    x = solve_pchip(xs, ys, 1, 1.5)
    assert 1.0 < x < 2.0
    assert solve_pchip([0.0, 4.0], [0.0, 2.0], 0, 1.0) == pytest.approx(2.0)


def test_half_steps_for_encoders_with_fractional_crf_get_closer() -> None:
    x264 = Domain.quality_scale("crf", 0, 51, 0.5)
    assert (x264.size, x264.values[:3], x264.values[-1]) == (103, (51.0, 50.5, 50.0), 0.0)
    assert Domain.quality_scale("crf", 18, 40, 2).values == tuple(
        float(v) for v in range(40, 17, -2)
    )

    def steep(crf: float) -> float:  # 2 VMAF points per CRF around 80, as x264 at 360p
        return 100.0 * (1.0 - math.exp(-(3.3 - 0.1 * crf)))

    for target in (76.0, 78.3, 80.0, 81.7, 84.0):
        s = search(curve(steep, x264), target, domain=x264)
        result = s.outcome()
        assert result.status == "found" and len(s.steps) <= 6
        assert result.chosen is not None
        assert abs(steep(x264.values[result.chosen]) - target) <= 0.55
