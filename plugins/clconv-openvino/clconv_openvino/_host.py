"""Facts about the host CPU and memory (for CPU devices and for the host-memory guard)."""

from __future__ import annotations

import functools
import os
import platform

_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}


@functools.lru_cache(maxsize=1)
def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def cpu_vendor() -> str:
    v = cpuinfo().get("vendor_id", "")
    return _VENDORS.get(v, v or platform.machine())


def cpu_extra() -> dict[str, object]:
    """What clconv's cost model reads for a CPU: clock and float32 SIMD lanes."""
    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags or "avx" in flags else 4
    extra: dict[str, object] = {"native_vector_width_float": lanes}
    try:
        extra["max_clock_mhz"] = int(float(info["cpu MHz"]))
    except (KeyError, ValueError):
        pass
    return extra


def host_memory() -> int:
    """Physical memory in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0
