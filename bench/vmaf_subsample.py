"""libvmaf's n_subsample for search probes (``ffmpeg-runner search --vmaf-subsample N``): how far
the probe's VMAF moves from scoring every frame, and how much scoring time it saves.

Each clip is probed with x264 veryfast at half its size (scored upscaled to the source, as the
runner scores) at each CRF, once per N, with the runner's own probe (``ffmpeg_runner.probe``:
the encode and the comparison a search runs). x264 encodes are deterministic, so every N scores
the same encode. Prints per N: the mean and largest |VMAF(N) - VMAF(1)| over the encodes, and
the mean seconds of scoring (wall) per probe. Nothing is asserted.

    .venv/bin/python bench/vmaf_subsample.py                      # about 10 minutes on 2 cores
    .venv/bin/python bench/vmaf_subsample.py --crfs 24 --subsamples 1,5
"""

from __future__ import annotations

import argparse
import statistics
import sys

from ffmpeg_runner.ffmpeg import probe_ffmpeg
from ffmpeg_runner.probe import Family, Prober, ProbeSettings
from ffmpeg_runner.quality import choose_tool
from ffmpeg_runner.source import clip_path, ffprobe_next_to, probe_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="bbb,bikes")
    parser.add_argument("--crfs", default="18,24,30,36")
    parser.add_argument("--subsamples", default="1,2,3,5,10")
    args = parser.parse_args()
    info = probe_ffmpeg("ffmpeg")
    tool = choose_tool(["vmaf"], None, info.path)
    subsamples = [int(n) for n in args.subsamples.split(",")]
    if subsamples[0] != 1:
        subsamples.insert(0, 1)
    errors: dict[int, list[float]] = {n: [] for n in subsamples}
    seconds: dict[int, list[float]] = {n: [] for n in subsamples}
    print(f"# ffmpeg {info.version} encodes, {tool.path} scores (libvmaf, every core)")
    print("clip   crf  " + "  ".join(f"N={n:<6}" for n in subsamples))
    for name in args.clips.split(","):
        path = clip_path(name)
        if path is None:
            print(f"{name}: not installed (the quality extra: make venv)", file=sys.stderr)
            return 1
        source = probe_file(path, ffprobe_next_to(info.path))
        assert source.width and source.height
        family = Family("libx264", "veryfast", source.width // 2 // 2 * 2,
                        source.height // 2 // 2 * 2, "crf")  # fmt: skip
        for crf in (float(c) for c in args.crfs.split(",")):
            scores = {}
            for n in subsamples:
                prober = Prober(ProbeSettings(info.path, tool, "vmaf", source, vmaf_subsample=n))
                probe = prober.probe(family, crf)
                if probe.score is None:
                    print(f"{name} crf {crf:g} N={n}: {probe.error}", file=sys.stderr)
                    return 1
                scores[n] = probe.score
                errors[n].append(abs(probe.score - scores[1]))
                seconds[n].append(probe.quality_s)
            print(f"{name:<6} {crf:<4g} " + "  ".join(f"{scores[n]:<8.3f}" for n in subsamples))
    print()
    print("| n_subsample | mean abs. VMAF error | largest abs. VMAF error | mean scoring s |")
    print("|---|---|---|---|")
    for n in subsamples:
        print(
            f"| {n} | {statistics.fmean(errors[n]):.3f} | {max(errors[n]):.3f} | "
            f"{statistics.fmean(seconds[n]):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
