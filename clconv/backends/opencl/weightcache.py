"""Prepared weights cached per kernel object: Winograd's transformed filters, FFT's weight
spectra, the pointwise GEMM's transposed weights.

A kernel whose kernels read a weight in another form than the caller's (the Winograd filter
transform U = G g G^T; the transposed, padded weight of im2col's pointwise path) computes that
form once per weight and keeps it in a :class:`FilterCache` (at most
:data:`FILTER_CACHE_ENTRIES` weights and :data:`FILTER_CACHE_BYTES`, least recently used out),
with the device copy of the weight and, for NumPy weights, a host copy of it.

- NumPy weight: found by content, comparing it byte for byte (memcmp) with the host copy kept in
  each entry of the context, most recently used first; a different weight differs within its
  first bytes, so only the matching entry costs a full comparison. That is exact (no collision)
  and cheap: ~0.17 ms for a 512x512x3x3 float32 weight, where a blake2b hash of its bytes costs
  ~7 ms here, more than the whole convolution. A hit uploads nothing.
- pyopencl weight: looked up by buffer handle and offset (the entry keeps a reference to the
  array, so the handle cannot be reused by another buffer). **In-place changes to a device weight
  are not detected**: call :meth:`CachedWeightKernel.clear_filter_cache` after changing one.

Counters on the kernel object: ``filter_transforms`` (prepared weights computed) and
``filter_cache_hits``.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...backend import Device
from ...errors import ConvValueError, UnsupportedError
from ...spec import ConvSpec, is_device_array
from . import runtime
from .base import OpenCLAlgorithm, OpenCLKernel, host_address
from .runtime import cl

#: At most this many prepared weights per kernel object, and at most this many bytes of them
#: (least recently used first out). A network reuses one spec for several layers (ResNet-50 has
#: six 256x256x3x3 layers at 14x14), so one entry would thrash.
FILTER_CACHE_ENTRIES = 8
FILTER_CACHE_BYTES = 512 * 2**20


@dataclass
class FilterEntry:
    """A prepared weight, the device weight it came from, and what proves it current."""

    u: Any  # cl.Buffer: the prepared weight
    w_dev: Any  # pyopencl array: the weight on the device (read by kernels that need it too)
    host: np.ndarray | None  # NumPy weights: the bytes u was computed from
    queue: Any  # the queue that computed u
    event: Any  # the last event of that computation
    nbytes: int


class FilterCache:
    """Prepared weights of one kernel object, least recently used first out.

    Device weights are keyed by (context, buffer handle, offset). NumPy weights are found by
    content: each entry of the context is compared with the weight byte for byte, most recently
    used first (:func:`same_bytes`: a different weight differs within its first bytes, so only
    the matching entry costs a full comparison).
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self.entries: OrderedDict[tuple[Any, ...], FilterEntry] = OrderedDict()
        self.max_entries = max_entries  # None: FILTER_CACHE_ENTRIES
        self._serial = 0

    def find_device(self, key: tuple[Any, ...]) -> FilterEntry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def find_host(self, ctx_ptr: int, host: np.ndarray) -> FilterEntry | None:
        for key in reversed(self.entries):
            entry = self.entries[key]
            if key[:2] == ("host", ctx_ptr) and entry.host is not None and same_bytes(entry.host, host):
                self.entries.move_to_end(key)
                return entry
        return None

    def add(self, key: tuple[Any, ...] | None, ctx_ptr: int, entry: FilterEntry) -> None:
        if key is None:  # a NumPy weight
            self._serial += 1
            key = ("host", ctx_ptr, self._serial)
        self.entries.pop(key, None)
        self.entries[key] = entry
        while len(self.entries) > 1 and (
            len(self.entries) > (self.max_entries or FILTER_CACHE_ENTRIES)
            or sum(e.nbytes for e in self.entries.values()) > FILTER_CACHE_BYTES
        ):
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


def _memcmp() -> Any:
    """libc's memcmp through ctypes (early exit, and faster than a NumPy comparison), or None."""
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        fn = (ctypes.CDLL(name) if name else ctypes.CDLL(None)).memcmp
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        return fn
    except (OSError, AttributeError, TypeError):  # pragma: no cover - no C library to load
        return None


_MEMCMP = _memcmp()


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact equality of two C-contiguous arrays of one shape and dtype, NaN payloads included
    (~0.17 ms for 9 MiB with memcmp; it stops at the first differing byte)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if _MEMCMP is not None:
        return a.nbytes == 0 or _MEMCMP(host_address(a), host_address(b), a.nbytes) == 0
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return bool((a.reshape(-1).view(bits) == b.reshape(-1).view(bits)).all())


class CachedWeightKernel(OpenCLKernel):
    """A kernel whose launches read a prepared form of the weight, cached per weight.

    Subclasses implement :meth:`_transform` (compute the prepared weight into a new
    :class:`FilterEntry`) and :meth:`_launch` (enqueue the convolution with it).
    """

    #: At most this many prepared weights per kernel (None: :data:`FILTER_CACHE_ENTRIES`).
    filter_cache_entries: int | None = None

    def __init__(self, spec: ConvSpec, device: Device, algorithm: OpenCLAlgorithm):
        super().__init__(spec, device, algorithm)
        self.filter_cache = FilterCache(self.filter_cache_entries)
        #: how many times a prepared weight was computed, and how many calls found it cached
        self.filter_transforms = 0
        self.filter_cache_hits = 0
        self._lock = threading.Lock()
        self._pending: FilterEntry | None = None  # the entry of the call in progress
        self._verify: Any = None  # its NumPy weight, when launched before comparing (_speculation)
        # (id, address, entry) of the last NumPy weight whose bytes were found in the cache
        self._last_host: tuple[int, int, FilterEntry] | None = None
        #: launches made on speculation whose weight had changed after all (run again)
        self.speculation_misses = 0

    def clear_filter_cache(self) -> None:
        """Forget every prepared weight (needed after changing a device weight in place)."""
        with self._lock:
            self.filter_cache.clear()

    def resident_weights(self, weight: Any, bias: Any) -> tuple[Any, Any]:
        """A NumPy weight of the spec's shape and dtype, uploaded once to this kernel's device
        queue: its prepared form is then found by buffer, without comparing the weight's bytes
        on every call (0.04 ms for 256x256x3x3, 0.2-0.4 ms for 512x512x3x3 float32, a third
        of a Winograd call at 7x7). Anything else, and the bias, unchanged."""
        s = self.spec
        if isinstance(weight, np.ndarray) and tuple(weight.shape) == s.weight_shape and weight.dtype == s.dtype:
            weight = runtime.cl_array.to_device(self.device.queue, np.ascontiguousarray(weight))
        return weight, bias

    # -- the call: OpenCLKernel's, but the weight goes through the filter cache first, so that a
    #    cached NumPy weight is not uploaded again (runs under OpenCLKernel.compute's lock)
    def _compute(self, queue: Any, on_device: bool, input: Any, weight: Any, bias: Any, out: Any) -> Any:
        try:
            entry = self._speculation(queue, weight)
            if entry is not None:
                self._verify = weight
            else:
                entry = self._filters(queue, weight)
        except cl.Error as exc:
            raise runtime.device_error(f"{self.algorithm.id} on {self.device.id}", exc) from exc
        self._pending = entry
        try:
            return super()._compute(queue, on_device, input, entry.w_dev, bias, out)
        finally:
            self._pending = self._verify = None

    def _speculation(self, queue: Any, weight: Any) -> FilterEntry | None:
        """The entry to launch with before a NumPy weight's bytes are compared, or None.

        Comparing a large weight costs about as much as reading it (~0.3 ms for ResNet-50's
        2048x512 1x1 weight, half the GEMM), so when the caller passes the same array object as
        in its previous call, and that call found its bytes unchanged, the kernel is launched
        with that call's entry at once and the bytes are compared while it runs (:meth:`run`);
        if they differ after all, the right entry is found or computed and launched again on
        the same in-order queue, which writes every output element over. Training loops that
        change a weight in place between calls find it changed and are not speculated on."""
        last = self._last_host
        if last is None or is_device_array(weight) or not isinstance(weight, np.ndarray):
            return None
        obj_id, addr, entry = last
        if (obj_id != id(weight) or addr != host_address(weight) or entry.queue.int_ptr != queue.int_ptr
                or not self._still_cached(entry)  # evicted
                or queue.properties & cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE):
            return None
        return entry

    def _still_cached(self, entry: FilterEntry) -> bool:
        """Whether ``entry`` is still in the filter cache (under its lock: another thread may be
        adding or evicting entries)."""
        with self._lock:
            return any(e is entry for e in self.filter_cache.entries.values())

    def run(self, queue: Any, x: Any, w: Any, b: Any, y: Any) -> None:
        """Enqueue the convolution on device arrays (a device weight's entry is cached by buffer)."""
        entry = self._pending
        if entry is None or entry.w_dev is not w:
            entry = self._filters(queue, w)
        self._launch(queue, x, entry, b, y)
        verify, self._verify = self._verify, None
        if verify is not None:  # launched on speculation: compare the bytes while it runs
            right = self._filters(queue, verify)
            if right is not entry:
                self.speculation_misses += 1
                self._launch(queue, x, right, b, y)

    def _filters(self, queue: Any, weight: Any) -> FilterEntry:
        spec = self.spec
        ctx = queue.context
        host = None
        if is_device_array(weight):
            if weight.context.int_ptr != ctx.int_ptr:
                raise UnsupportedError("weight is a pyopencl array in another context than the input")
            if not weight.flags.c_contiguous:
                raise ConvValueError("weight is a non-contiguous pyopencl array: pass a C-contiguous array")
            key: tuple[Any, ...] | None = ("device", ctx.int_ptr, weight.base_data.int_ptr, int(weight.offset))
        else:
            host = runtime.host_array(weight, spec.dtype)
            key = None
        with self._lock:
            if host is None:
                entry = self.filter_cache.find_device(key)  # type: ignore[arg-type]
            else:
                entry = self.filter_cache.find_host(ctx.int_ptr, host)
                hit = entry is not None and isinstance(weight, np.ndarray)
                self._last_host = (id(weight), host_address(weight), entry) if hit else None
            if entry is not None:
                self.filter_cache_hits += 1
                if entry.queue.int_ptr != queue.int_ptr:
                    entry.event.wait()  # computed on another queue of this context
                return entry
            entry = self._transform(queue, weight, host)
            self.filter_cache.add(key, ctx.int_ptr, entry)
            self.filter_transforms += 1
            return entry

    @abstractmethod
    def _transform(self, queue: Any, weight: Any, host: np.ndarray | None) -> FilterEntry:
        """Compute the prepared weight into a new buffer (a NumPy weight is uploaded first; the
        entry keeps a host copy of it)."""

    @abstractmethod
    def _launch(self, queue: Any, x: Any, entry: FilterEntry, b: Any, y: Any) -> None:
        """Enqueue the convolution of device arrays x, b, y with the prepared weight ``entry``."""
