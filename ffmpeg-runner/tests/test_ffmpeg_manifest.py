"""Manifest file handling: atomic replacement, host facts, run ids."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from ffmpeg_runner.contract import SCHEMA_VERSION, RunManifest, WindowRecord
from ffmpeg_runner.manifest import Manifest, host_facts, new_run_id, write_json_atomic


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run.json"
    write_json_atomic(path, {"a": 1})
    inode = path.stat().st_ino
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert os.listdir(path.parent) == ["run.json"]


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json_atomic(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}
    assert os.listdir(tmp_path) == ["run.json"]


def test_manifest_is_rewritten_per_window_and_at_the_end(tmp_path: Path) -> None:
    run = RunManifest("r", 1000, {"cores": 2}, {"version": "5.1"}, 0.1)
    manifest = Manifest(tmp_path / "r.json", run)
    manifest.write()
    assert json.loads(manifest.path.read_text())["status"] == "running"
    window = WindowRecord("a", "baseline", 0, 1000, 1500, run_id="r")
    manifest.add_window(window)
    doc = json.loads(manifest.path.read_text())
    assert doc["windows"] == [window.to_json()]
    assert RunManifest.from_json(doc, "r.json").windows == [window]
    manifest.finish("completed", 2000)
    doc = json.loads(manifest.path.read_text())
    assert (doc["schema_version"], doc["status"], doc["ended_ms"]) == (
        SCHEMA_VERSION,
        "completed",
        2000,
    )
    assert doc["sample_interval_s"] == 0.1 and doc["ffmpeg"] == {"version": "5.1"}


def test_host_facts_from_injected_roots(tmp_path: Path) -> None:
    proc, etc = tmp_path / "proc", tmp_path / "etc"
    proc.mkdir()
    etc.mkdir()
    (proc / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    (etc / "os-release").write_text('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    facts = host_facts(proc, etc, tmp_path / "sys", instance="node-7")
    assert facts["cpu_model"] == "Test CPU 9000"
    assert facts["instance"] == "node-7" and facts["virtualized"] is False
    assert facts["os"] == "Debian GNU/Linux 12"
    assert facts["cores"] >= 1 and facts["kernel"] and facts["hostname"]
    assert host_facts(tmp_path / "none", tmp_path / "none")["cpu_model"] == "unknown"


def test_run_ids_sort_by_time_and_differ() -> None:
    first = new_run_id(1_795_426_500.0)
    assert re.fullmatch(r"20261123T\d{6}Z-[0-9a-f]{4}", first)
    assert new_run_id(1_795_426_500.0) != first or new_run_id(1_795_426_500.0) != first
    assert new_run_id(1_795_426_501.0) > first[:16]
