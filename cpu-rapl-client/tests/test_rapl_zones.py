"""Zone discovery over fake powercap trees: identity from name files, mirrors counted once."""

from __future__ import annotations

from pathlib import Path

import pytest
from cpu_rapl_client.zones import discover_zones
from wattpush_testing.rapl import (
    FakePowercap,
    amd_rapl,
    denying_reader,
    intel_dual_socket_dram,
    intel_single_socket,
)

LAYOUTS = ["flat", "nested"]


def keys(tree_root: Path, **kw: object) -> list[tuple[str, str]]:
    return [z.key for z in discover_zones(tree_root, **kw).zones]  # type: ignore[arg-type]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_single_socket_intel_with_mmio_mirror_counted_once(tmp_path: Path, layout: str) -> None:
    tree = intel_single_socket(tmp_path / "sys")
    found = discover_zones(tree.root(layout))
    assert [z.key for z in found.zones] == [
        ("package", "0"),
        ("core", "0"),
        ("uncore", "0"),
        ("psys", "platform"),
    ]
    package = found.zones[0]
    assert package.control_type == "intel-rapl"  # the MSR copy is preferred over MMIO
    assert package.max_energy_range_uj == 262_143_328_850
    assert [m.sysfs_id for m in found.mirrors] == ["intel-rapl-mmio:0"]
    assert found.unreadable == []


def test_mmio_mirror_used_when_the_msr_copy_is_unreadable(tmp_path: Path) -> None:
    tree = intel_single_socket(tmp_path / "sys")
    reader = denying_reader(lambda p: "intel-rapl:0/energy_uj" in str(p))
    found = discover_zones(tree.root(), reader)
    package = next(z for z in found.zones if z.zone == "package")
    assert package.control_type == "intel-rapl-mmio"
    assert found.unreadable == []  # the key is covered by the mirror


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dual_socket_with_dram_takes_sockets_from_parent_names(tmp_path: Path, layout: str) -> None:
    tree = intel_dual_socket_dram(tmp_path / "sys")
    found = discover_zones(tree.root(layout))
    assert [z.key for z in found.zones] == [
        ("package", "0"),
        ("dram", "0"),
        ("package", "1"),
        ("dram", "1"),
    ]
    dram1 = found.zones[3]
    assert dram1.sysfs_id == "intel-rapl:1:0"
    assert dram1.max_energy_range_uj == 65_712_999_613


def test_socket_comes_from_the_name_file_not_the_directory_index(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "sys")
    tree.add_zone("intel-rapl:0", "package-1")
    tree.add_zone("intel-rapl:0:0", "dram")
    tree.add_zone("intel-rapl:1", "package-0")
    tree.add_zone("intel-rapl:1:0", "core")
    by_id = {z.sysfs_id: z.key for z in discover_zones(tree.root()).zones}
    assert by_id == {
        "intel-rapl:0": ("package", "1"),
        "intel-rapl:0:0": ("dram", "1"),
        "intel-rapl:1": ("package", "0"),
        "intel-rapl:1:0": ("core", "0"),
    }


def test_amd_package_and_core(tmp_path: Path) -> None:
    tree = amd_rapl(tmp_path / "sys")
    found = discover_zones(tree.root())
    assert [(z.key, z.control_type) for z in found.zones] == [
        (("package", "0"), "amd-rapl"),
        (("core", "0"), "amd-rapl"),
    ]


def test_multi_die_packages_stay_distinct(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "sys")
    tree.add_zone("intel-rapl:0", "package-0-die-0")
    tree.add_zone("intel-rapl:0:0", "dram")
    tree.add_zone("intel-rapl:1", "package-0-die-1")
    assert keys(tree.root()) == [
        ("package", "0-die-0"),
        ("dram", "0-die-0"),
        ("package", "0-die-1"),
    ]


def test_other_control_types_and_junk_are_ignored(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "sys")
    tree.add_zone("intel-rapl:0", "package-0")
    tree.add_zone("dtpm:0", "soc")
    (tree.klass / "intel-rapl:x").mkdir()  # not <type>:<int>
    (tree.klass / "intel-rapl:0:extra").mkdir()
    (tree.zone_dir("intel-rapl:0") / "intel-rapl:0:9").mkdir()  # no name file: unidentifiable
    assert keys(tree.root()) == [("package", "0")]


def test_zero_zones_and_missing_root_are_explained(tmp_path: Path) -> None:
    empty = FakePowercap(tmp_path / "sys")
    found = discover_zones(empty.root())
    assert found.zones == [] and "no RAPL zone" in found.summary()
    missing = discover_zones(tmp_path / "nope")
    assert missing.zones == [] and "does not exist" in missing.summary()


def test_permission_denied_everywhere_is_reported_per_zone(tmp_path: Path) -> None:
    tree = intel_single_socket(tmp_path / "sys", mmio=False, psys=False)
    found = discover_zones(tree.root(), denying_reader(lambda p: p.name == "energy_uj"))
    assert found.zones == []
    assert len(found.unreadable) == 3
    assert all("permission denied" in why for _, why in found.unreadable)
    assert "intel-rapl:0 (package-0): permission denied" in found.summary()


def test_unreadable_max_range_is_tolerated(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "sys")
    tree.add_zone("intel-rapl:0", "package-0", max_energy_range_uj=None)
    (zone,) = discover_zones(tree.root()).zones
    assert zone.max_energy_range_uj is None


def test_garbage_energy_is_unreadable(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "sys")
    tree.add_zone("intel-rapl:0", "package-0")
    (tree.zone_dir("intel-rapl:0") / "energy_uj").write_text("n/a\n")
    found = discover_zones(tree.root())
    assert found.zones == [] and "whole number" in found.summary()
