"""The cost model: a roofline prediction of each candidate's time, from device facts.

predicted = max(flops / (peak * efficiency), bytes / bandwidth) + launches * launch overhead

``peak`` (float32 FLOP/s) and ``bandwidth`` come from a :class:`DeviceProfile`:
calibrated by ``clconv tune --calibrate`` and stored in the tuning database when
available, otherwise estimated from the device's facts (compute units, clock,
vector width, kind). Each algorithm describes its work as a :class:`Cost`
(``Algorithm.cost``): its own FLOP and byte counts, launches, and the fraction
of peak its kernels reach, which may depend on the shape (a GEMM with K = 9
runs far below peak).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .backend import Device
from .spec import ConvSpec


@dataclass(frozen=True)
class DeviceProfile:
    peak_gflops: float  # float32
    bandwidth_gbs: float
    launch_us: float
    source: str = "estimated"
    #: fixed host cost of one call through a kernel object of this device's backend, on top
    #: of its launches: validation, wrapping, allocation, the framework's own dispatch
    #: (measured by :func:`clconv.tuning.calibrate` on a tiny convolution)
    call_us: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cost:
    flops: float
    bytes: float
    launches: int = 1
    efficiency: float = 0.1  # fraction of peak FLOP/s the kernels reach on this shape

    def predict(self, profile: DeviceProfile, dtype: str = "float32") -> float:
        peak = profile.peak_gflops * 1e9 * _DTYPE_SPEED.get(dtype, 1.0)
        compute = self.flops / max(peak * max(self.efficiency, 1e-6), 1.0)
        memory = self.bytes / max(profile.bandwidth_gbs * 1e9, 1.0)
        return max(compute, memory) + (self.launches * profile.launch_us + profile.call_us) * 1e-6


# float64 runs at half speed on CPUs (and far slower on consumer GPUs; see estimate()).
_DTYPE_SPEED = {"float32": 1.0, "float16": 1.0, "float64": 0.5}


def estimate(device: Device) -> DeviceProfile:
    """A profile from device facts alone (no measurement)."""
    x = device.extra
    cus = max(device.compute_units, 1)
    clock = (x.get("max_clock_mhz") or 2000) / 1000.0
    if device.backend == "numpy":
        # BLAS on the host: ~2 FMA pipes x 8 lanes x 2 FLOP per core and cycle, ~60% of it in practice
        return DeviceProfile(cus * clock * 32 * 0.6, 10.0 * min(cus, 8), 5.0, "estimated (host BLAS)", 20.0)
    lanes = x.get("native_vector_width_float") or x.get("preferred_vector_width_float") or 4
    if device.kind == "cpu":
        lanes = min(max(int(lanes), 4), 16)
        # A device that runs kernels on the calling thread (PoCL's basic) has no hand-over to
        # worker threads: ~1 us per launch (PoCL 3.1) where its pthread device takes ~30-50.
        launch = 2.0 if x.get("runs_on_caller_thread") else 50.0
        return DeviceProfile(cus * clock * lanes * 2 * 2, 10.0 * min(cus, 8), launch, "estimated (OpenCL CPU)", 20.0)
    if device.kind == "gpu":
        # 64 lanes per compute unit is a middle ground between vendors
        bw = 400.0 if device.memory_bytes >= 8 * 2**30 else 100.0
        return DeviceProfile(cus * clock * 64 * 2, bw, 10.0, "estimated (GPU)", 20.0)
    return DeviceProfile(cus * clock * 16 * 2, 50.0, 20.0, "estimated (accelerator)", 20.0)


def profile(device: Device) -> DeviceProfile:
    """The calibrated profile of ``device`` from the tuning database, else an estimate."""
    from . import tuning

    cal = tuning.database().profile(device)
    return cal if cal is not None else estimate(device)


def predict(spec: ConvSpec, device: Device, algorithm: Any) -> float:
    cost = algorithm.cost(spec, device)
    return cost.predict(profile(device), spec.dtype)


# ------------------------------------------------------------------ helpers for algorithms
def gemm_efficiency(m: int, n: int, k: int, base: float) -> float:
    """Fraction of peak a tiled GEMM of (m x k) @ (k x n) reaches: lower for thin or short shapes."""
    return base * min(1.0, m / 32) ** 0.5 * min(1.0, n / 64) ** 0.5 * min(1.0, k / 64) ** 0.5


def io_bytes(spec: ConvSpec) -> float:
    return float(spec.nbytes("input") + spec.nbytes("weight") + spec.nbytes("output"))


def spatial(spec: ConvSpec) -> int:
    return math.prod(spec.out_size if not spec.transposed else spec.in_size)
