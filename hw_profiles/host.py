"""The ``host`` profile belongs to the machine the tool runs on.

It is built here by ``search calibrate --hw host`` (onnxruntime micro-benchmarks and whole models, fitted to
this CPU) and cached per user, keyed by what decides onnxruntime's kernels: the CPU model, its instruction
set extensions and the onnxruntime version. A machine without its own host profile is refused with the
command that builds it; another machine's numbers are never used silently. The template under
``templates/`` is only the starting point of that fit.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:
    from hw_profiles.schema import Profile

HOST = "host"
TEMPLATE = Path(__file__).parent / "templates" / "host.yaml"
CACHE_ENV = "HW_SEARCH_CACHE"
# Instruction set extensions that change which onnxruntime (MLAS) kernels run: x86 and Arm.
KERNEL_FLAGS = frozenset(
    {
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
        "asimd",
        "asimdhp",
        "asimddp",
        "i8mm",
        "sve",
        "sve2",
        "bf16",
    }
)


def this_machine() -> dict[str, str]:
    """What a host profile is valid for: CPU model, its kernel-relevant instruction sets, onnxruntime version."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model") and model in (platform.processor(), platform.machine()):
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
    try:
        runtime = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        runtime = "not installed"
    return {
        "cpu": model,
        "arch": platform.machine(),
        "isa": " ".join(sorted(flags & KERNEL_FLAGS)),
        "onnxruntime": runtime,
    }


def describe(machine: dict[str, str]) -> str:
    """``AMD EPYC (x86_64: avx2 fma), onnxruntime 1.31.1``."""
    return (
        f"{machine['cpu']} ({machine['arch']}: {machine['isa'] or 'no vector extensions'}), onnxruntime {machine['onnxruntime']}"
    )


def cache_dir() -> Path:
    """Where host profiles are cached: ``$HW_SEARCH_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``hw-compress-search/host``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root) / HOST
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hw-compress-search" / HOST


def profile_path(machine: dict[str, str] | None = None) -> Path:
    """The cached host profile of ``machine`` (default: this one)."""
    machine = machine or this_machine()
    key = hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"host-{key}.yaml"


# Channel blocks of onnxruntime's kernels by instruction set, first match per precision: FP32 NCHWc convolutions
# (MLAS platform.cpp, NchwcBlockSize). The INT8 block stays the template's 8: a block of 4 (the AVX-512 symmetric
# convolution's channel alignment) was tried and over-predicted the 3-channel stem conv of ResNet-18 3x.
MACHINE_BLOCKS = (
    ("fp32", "avx512f", 16, "MLAS platform.cpp: with AVX-512F, NchwcBlockSize = 16 (a 512-bit register holds 16 FP32)"),
    ("fp32", "avx2", 8, "MLAS platform.cpp: with AVX2, NchwcBlockSize = 8 (a 256-bit register holds 8 FP32)"),
)


def with_machine_blocks(profile: Profile, machine: dict[str, str]) -> Profile:
    """``profile`` with its default unit's channel blocks set to those of ``machine``'s instruction set
    (:data:`MACHINE_BLOCKS`; a precision no row matches keeps its block)."""
    flags = set(machine.get("isa", "").split())
    data = profile.model_dump()
    blocks = data["units"][profile.default_unit].setdefault("channel_block", {})
    matched: set[str] = set()
    for precision, flag, block, text in MACHINE_BLOCKS:
        if flag in flags and precision not in matched:
            matched.add(precision)
            data["sources"][f"{precision}-blocks-{flag}"] = text
            blocks[precision] = {"value": float(block), "source": f"{precision}-blocks-{flag}"}
    return type(profile).model_validate(data) if matched else profile


def cache_sizes_kb() -> dict[int, float]:
    """This CPU's data/unified cache sizes (KB) by level, as Linux reports them for core 0; {} elsewhere."""
    sizes: dict[int, float] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level, size = int((index / "level").read_text()), (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        scale = {"K": 1.0, "M": 1024.0, "G": 1024.0**2}.get(size[-1:].upper())
        if scale is not None and size[:-1].isdigit():
            sizes[level] = int(size[:-1]) * scale
    return sizes


def with_machine_caches(profile: Profile, unit_name: str) -> Profile:
    """``profile`` with ``unit_name``'s caches set to this CPU's last-level cache: ``cache_kb`` (an op whose working
    set fits reads it at ``cache_gbs``) and ``weights_cache_kb`` (where a model's weights stay between inferences).
    Measured here, XNNPACK ops of a few MB ran at cache speed, not DRAM's, so the level-2 size is not the bound."""
    sizes = cache_sizes_kb()
    if not sizes:
        return profile
    data = profile.model_dump()
    key = "caches-this-machine"
    levels = ", ".join(f"L{level} {kb:.0f} KB" for level, kb in sorted(sizes.items()))
    data["sources"][key] = f"/sys/devices/system/cpu/cpu0/cache of {describe(this_machine())}: {levels}"
    unit = data["units"][unit_name]
    for field in ("cache_kb", "weights_cache_kb"):
        unit[field] = {"value": sizes[max(sizes)], "source": key}
    return type(profile).model_validate(data)


def build_command() -> str:
    """The command that builds this machine's host profile, and what it costs."""
    return "`search calibrate --hw host` (about 4 minutes on 2 cores)"


def load_host_profile() -> Profile:
    """This machine's host profile.

    Raises:
        UserError: none was built on this machine (or the cached file describes another one): names the command.
    """
    from hw_profiles.files import load_profile_file

    machine = this_machine()
    path = profile_path(machine)
    if not path.is_file():
        raise UserError(f"no host profile for this machine, {describe(machine)}: build it with {build_command()}")
    profile = load_profile_file(path)
    if profile.machine != machine:
        built = describe(profile.machine) if profile.machine else "an unknown machine"
        raise UserError(f"host profile '{path}' was built on {built}, not this one: rebuild it with {build_command()}")
    return profile


def calibration_start() -> Profile:
    """What ``search calibrate --hw host`` fits: this machine's host profile if it has one, else the template."""
    from hw_profiles.files import load_profile_file

    try:
        return with_template_units(load_host_profile())
    except UserError:
        return load_profile_file(TEMPLATE)


def with_template_units(profile: Profile) -> Profile:
    """``profile`` brought up to the template's units (one built before a unit or a field existed): the units it
    lacks, which keep the template's estimates until calibrated here (:func:`check_calibrated`), and the runtime
    that measures each unit it has (``host_runtime``)."""
    from hw_profiles.files import load_profile_file

    template = load_profile_file(TEMPLATE)
    units = {
        name: unit.model_copy(update={"host_runtime": template.units[name].host_runtime})
        if name in template.units and unit.host_runtime is None
        else unit
        for name, unit in profile.units.items()
    }
    units.update({name: unit for name, unit in template.units.items() if name not in units})
    if units == profile.units:
        return profile
    return profile.model_copy(update={"units": units, "sources": {**template.sources, **profile.sources}})


def check_calibrated(profile: Profile, unit_name: str) -> None:
    """Refuse a host unit whose MAC rates were never fitted on this machine (the template's estimates), naming
    the command that fits them."""
    from hw_profiles.schema import CALIBRATION_PREFIX

    unit = profile.units[unit_name]
    if not any(rate.source.startswith(CALIBRATION_PREFIX) for rate in unit.gmacs.values()):
        cost = "about 6 minutes; needs the [litert] extra" if unit.host_runtime == "litert" else "a few minutes"
        raise UserError(
            f"unit {unit_name} of the host profile is not calibrated on this machine: run "
            f"`search calibrate --hw {HOST}:{unit_name}` ({cost})"
        )
