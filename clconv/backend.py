"""What a backend is: the abstract classes every plugin implements.

A :class:`Backend` lists its :class:`Device` s and its :class:`Algorithm` s.
An algorithm says, without raising, whether it supports a (spec, device) and
why not (:class:`Support`), how much workspace it needs, and prepares a
reusable :class:`Kernel` for a spec on a device. The dispatcher does the rest.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

import numpy as np

from .errors import ConvTypeError, ConvValueError
from .spec import ConvSpec, is_device_array

if TYPE_CHECKING:  # pragma: no cover
    from .costmodel import Cost

#: Device kinds a backend may report.
DEVICE_KINDS = ("cpu", "gpu", "npu", "accelerator")


@dataclass(frozen=True)
class Support:
    """Whether an algorithm can run a spec on a device, and if not, why.

    ``kind`` tells the dispatcher how to report a rejection: ``"unsupported"``
    (the algorithm cannot express the spec), ``"capability"`` (the device lacks
    something: fp64, fp16, local memory), ``"memory"`` (too large for the device),
    ``"size"`` (larger than the algorithm can index) or ``"placement"`` (the data
    lives elsewhere).
    """

    ok: bool
    reason: str = ""
    kind: str = "unsupported"

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def yes(cls) -> "Support":
        return cls(True)

    @classmethod
    def no(cls, reason: str, kind: str = "unsupported") -> "Support":
        return cls(False, reason, kind)


def first_failure(*checks: tuple[bool, str] | tuple[bool, str, str]) -> Support:
    """A ladder of one-line guards: the first ``(failed, reason[, kind])`` that fails wins.

    Write ``supports`` as ``return first_failure((spec.ndim != 2, "2D only"), ...)``
    so that the first failing line is the reason the user sees.
    """
    for check in checks:
        if check[0]:
            return Support.no(check[1], check[2] if len(check) > 2 else "unsupported")
    return Support.yes()


@dataclass(eq=False)
class Device:
    """One device of a backend, with the facts ``clconv devices`` shows.

    Backends may subclass it to carry their own handles. ``id`` is stable for a
    given machine configuration (``numpy:cpu``, ``opencl:0:1``).
    """

    id: str
    backend: str
    name: str
    kind: str = "cpu"
    vendor: str = ""
    driver: str = ""
    memory_bytes: int = 0
    compute_units: int = 0
    fp64: bool = True
    fp16: bool = False
    #: Backend-specific facts (platform, OpenCL C version, extensions, clock...).
    extra: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """Everything a report or ``clconv devices --json`` shows about this device."""
        d = {f.name: getattr(self, f.name) for f in fields(Device)}
        d["extra"] = dict(self.extra)
        d["fp64"] = bool(self.fp64)
        d["fp16"] = bool(self.fp16)
        return d

    def problem(self) -> str:
        """Why this device cannot run anything (''  when it can). May do a quick probe once."""
        return ""

    def owns(self, array: Any) -> bool:
        """True when ``array`` is device memory this device can use without a host copy."""
        return False

    def fingerprint(self) -> str:
        """A string that changes whenever the device or its driver changes."""
        return "|".join((self.backend, self.name, self.vendor, self.driver))

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.id == self.id

    def __repr__(self) -> str:
        return f"<Device {self.id} {self.name!r}>"


class Kernel(ABC):
    """A prepared convolution: a spec bound to a device and an algorithm, ready to run.

    Calling it with ``(input, weight, bias)`` runs the convolution and returns the
    result, in the form the backend documents (NumPy for host input). With
    ``out=`` (an array of the output's shape and dtype) it writes every element
    of ``out`` and returns ``out``: the conformance suite fills ``out`` with
    poison first, to prove that every element is written.
    """

    #: The tunable kernel parameters this kernel runs with (see ``Algorithm.variants``); {} if none.
    params: dict[str, Any] = {}

    def __init__(self, spec: ConvSpec, device: Device, algorithm: "Algorithm"):
        self.spec = spec
        self.device = device
        self.algorithm = algorithm

    def __call__(self, input: Any, weight: Any, bias: Any = None, out: Any = None) -> Any:
        """Check the arrays against the spec, then :meth:`compute`.

        Every backend gets the same guard: arrays of another shape or dtype than
        the kernel was prepared for raise ConvValueError/ConvTypeError here,
        before any device code could read out of bounds.
        """
        input, weight, bias = (_native(a) for a in (input, weight, bias))
        self.check_arrays(input, weight, bias)
        if out is not None:
            check_out(self.spec, out)
        return self.compute(input, weight, bias, out)

    def resident_weights(self, weight: Any, bias: Any) -> tuple[Any, Any]:
        """Weight and bias in the form this kernel runs fastest with when they stay the same
        from call to call (``clconv.plan(..., constant_weights=True)``): for example uploaded
        to its device once, where a host weight would be checked or uploaded on every call.
        Called once per weight and bias object; the caller passes the result in their place
        for host inputs. Default: unchanged."""
        return weight, bias

    @abstractmethod
    def compute(self, input: Any, weight: Any, bias: Any, out: Any) -> Any:
        """Run the convolution on checked arrays; never modify input, weight or bias.

        With ``out`` (not None), write every element of it and return it.
        """

    def check_arrays(self, input: Any, weight: Any, bias: Any) -> None:
        """Arrays must be arrays of the spec's shapes and dtype (bias present iff the spec has one)."""
        s = self.spec
        for name, arr, shape in (
            ("input", input, s.input_shape),
            ("weight", weight, s.weight_shape),
            ("bias", bias, (s.out_channels,) if s.bias else None),
        ):
            if shape is None:
                if arr is not None:
                    raise ConvValueError("bias was given, but this kernel was prepared without a bias")
                continue
            if arr is None:
                raise ConvValueError(f"{name} is None; this kernel needs an array of shape {shape}")
            if not (isinstance(arr, np.ndarray) or is_device_array(arr)):
                raise ConvTypeError(f"{name} has type {type(arr).__name__}: give a numpy.ndarray or a pyopencl array")
            if tuple(arr.shape) != shape:
                raise ConvValueError(
                    f"{name} has shape {tuple(arr.shape)}, but this kernel was prepared for {shape}"
                )
            if arr.dtype != s.dtype and np.dtype(arr.dtype).name != s.dtype:  # (byte order aside)
                raise ConvTypeError(f"{name} has dtype {arr.dtype}, but this kernel was prepared for {s.dtype}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.algorithm.id} on {self.device.id}: {self.spec.describe()}>"


class Algorithm(ABC):
    """One way of computing a convolution on a backend's devices.

    Subclasses set ``id`` (stable and never reused, so that tuning results
    survive renames), ``family`` (``reference``, ``direct``, ``gemm``,
    ``winograd``, ``fft``: the conformance suite picks tolerances by it) and
    implement ``supports`` and ``prepare``.
    """

    id: ClassVar[str]
    family: ClassVar[str] = "direct"
    #: Same bits run after run for the same inputs.
    deterministic: ClassVar[bool] = True
    description: ClassVar[str] = ""
    #: Fraction of the device's peak FLOP/s the kernels reach (the cost model's default).
    efficiency: ClassVar[float] = 0.05

    @abstractmethod
    def supports(self, spec: ConvSpec, device: Device) -> Support:
        """Whether this algorithm can run ``spec`` on ``device``. Pure; never raises."""

    def workspace_bytes(self, spec: ConvSpec, device: Device) -> int:
        """Scratch memory the algorithm needs beyond input, weight and output."""
        return 0

    def memory_bytes(self, spec: ConvSpec, device: Device) -> int:
        """Peak device memory of one call: arrays, plus workspace."""
        return sum(spec.nbytes(w) for w in ("input", "weight", "bias", "output")) + self.workspace_bytes(
            spec, device
        )

    @abstractmethod
    def prepare(self, spec: ConvSpec, device: Device) -> Kernel:
        """Build whatever the spec needs on the device and return a reusable Kernel.

        A tunable algorithm (see :meth:`variants`) takes a third argument, ``params``: one of
        its variants, or None for its default.
        """

    # -- tunable kernel parameters (tile sizes, vector widths, work-group shapes...)
    def variants(self, spec: ConvSpec, device: Device) -> list[dict[str, Any]]:
        """The kernel parameter settings worth measuring for ``spec`` on ``device``, default first.

        An algorithm whose kernels take parameters (tile sizes, vector widths, work-group shapes,
        as build macros) returns a handful of settings valid on the device, pruned by its facts
        (each costs a kernel build when measured). ``clconv tune`` and the ``measure`` policy time
        every variant, store the fastest in the tuning database entry of (device, spec,
        algorithm), and the dispatcher then prepares with it (:meth:`prepare_with`); without an
        entry it prepares with the first, the default. Values must survive JSON (str, int,
        float, bool). The default, ``[{}]``, means nothing to tune: ``prepare`` is then called
        with two arguments, as for any plugin that knows nothing of parameters.
        """
        return [{}]

    def prepare_with(self, spec: ConvSpec, device: Device, params: dict[str, Any] | None = None) -> Kernel:
        """:meth:`prepare` with kernel parameters (one of :meth:`variants`; None or {}: the default).

        The dispatcher's only way in. The kernel's ``params`` attribute says what it runs with.
        """
        kernel = self.prepare(spec, device, params) if params else self.prepare(spec, device)  # type: ignore[call-arg]
        if not getattr(kernel, "params", None) and params:
            kernel.params = dict(params)
        return kernel

    def describe_params(self, params: dict[str, Any]) -> str:
        """A short human-readable form of one variant (``explain``, ``cache list``)."""
        return " ".join(f"{k}={v}" for k, v in params.items())

    def cost(self, spec: ConvSpec, device: Device) -> "Cost":
        """The work of one call, for the cost model: FLOPs, bytes moved, launches, efficiency.

        The default is the direct algorithm's FLOPs and the arrays' bytes, one
        launch, at ``efficiency``. Override it to describe what the kernels do.
        """
        from .costmodel import Cost, io_bytes

        return Cost(spec.flops, io_bytes(spec), 1, self.efficiency)

    def __repr__(self) -> str:
        return f"<Algorithm {self.id}>"


class Backend(ABC):
    """A family of devices and the algorithms that run on them.

    ``name`` is unique across all plugins; ``version`` goes into reports and
    tuning keys.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0"
    description: ClassVar[str] = ""

    @abstractmethod
    def devices(self) -> list[Device]:
        """Every device this backend can run on (may be empty)."""

    @abstractmethod
    def algorithms(self) -> list[Algorithm]:
        """Every algorithm of this backend, in order of preference when all else is equal."""

    def source_hash(self) -> str:
        """A hash of the kernel sources (tuning results are keyed by it); '' when not applicable."""
        return ""

    def device(self, device_id: str) -> Device:
        for d in self.devices():
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def __repr__(self) -> str:
        return f"<Backend {self.name} {self.version}>"


def _native(arr: Any) -> Any:
    """A NumPy array in native byte order (a copy only when it is byte-swapped).

    Specs name dtypes by name (``float64``), so a big-endian ``>f8`` array is valid
    input; kernels expect native order.
    """
    if isinstance(arr, np.ndarray) and not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def check_out(spec: ConvSpec, out: Any) -> None:
    """``out`` must be a writable array of the output's shape and dtype."""
    if not (isinstance(out, np.ndarray) or is_device_array(out)):
        raise ConvTypeError(f"out has type {type(out).__name__}: give a numpy.ndarray or a pyopencl array")
    if tuple(out.shape) != spec.output_shape or np.dtype(out.dtype) != np.dtype(spec.dtype):
        raise ConvValueError(
            f"out has shape {tuple(out.shape)} and dtype {out.dtype}; "
            f"this call writes shape {spec.output_shape}, dtype {spec.dtype}"
        )
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ConvValueError("out is read-only")


def check_memory(spec: ConvSpec, device: Device, need: int) -> Support:
    """Reject a call whose peak memory exceeds what the device has."""
    if device.memory_bytes and need > device.memory_bytes:
        return Support.no(
            f"needs {format_bytes(need)} but {device.id} has {format_bytes(device.memory_bytes)}",
            "memory",
        )
    return Support.yes()


def format_bytes(n: int | float) -> str:
    if n < 1024:
        return f"{int(n)} B"
    units = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    e = min(int(math.log(n, 1024)), len(units))
    return f"{n / 1024**e:.1f} {units[e - 1]}"


def algorithm_ids(algorithms: Iterable[Algorithm]) -> list[str]:
    return [a.id for a in algorithms]


BackendFactory = Callable[[], Backend]
