"""Device tests run once per OpenCL device found.

``CLCONV_TEST_DEVICES=opencl:0:0,pthread`` narrows them to the devices whose id
equals, or whose name contains, one of the comma-separated words.
``CLCONV_REQUIRE_DEVICE=1`` (CI sets it) makes "no usable OpenCL device" a failure
instead of a skip. ``CLCONV_TEST_DEVICE_KIND=cpu`` (or ``gpu``) makes clconv take the devices
under test for that kind, so that the algorithms run the forms they choose for it (the
Oclgrind test runs its subset both ways: Oclgrind claims every device type, and clconv takes
it for a GPU).

PoCL's basic device (``runs_on_caller_thread``) compiles the same kernels with the same
compiler as the pthread device of its platform; it differs in how it runs work-groups (one
after another, on the calling thread). Where its platform has another device under test, it
gets the conformance suite's cases over every algorithm (``BASIC_SIBLING_MODULES``: how
work-groups are scheduled is a kernel matter; the host-side data handling is the platform's
and runs on its first device) rather than the whole grid a second time; naming it in
``CLCONV_TEST_DEVICES`` gives it every test.

The same holds for a *twin*: the same device exposed again by another installed version of
the same OpenCL implementation (pip's PoCL 3.0 next to Debian's PoCL 3.1 on one CPU, which CI
installs because pip's cannot build for some CPUs). The first usable one in enumeration order
gets the whole grid; each later twin gets ``SIBLING_MODULES``, which still run every
algorithm's conformance cases and the data-handling behaviour through that platform's compiler
and driver, in float32 (see :func:`skip_on_sibling`), and a twin's basic device gets nothing
(see :func:`role`). Testing the whole grid on every copy doubled CI's time (53 minutes on a
2-core machine where both PoCLs work; 28 with siblings running the whole conformance suite,
most of it kernel builds; still 28 with the behaviour module in every dtype on both siblings
and new tests, when the basic sibling was cut to the conformance suite and siblings to float32).
"""

from __future__ import annotations

import os

import pytest

from clconv.backends.opencl import runtime

ENV_DEVICES = "CLCONV_TEST_DEVICES"
ENV_REQUIRE = "CLCONV_REQUIRE_DEVICE"
ENV_KIND = "CLCONV_TEST_DEVICE_KIND"


def selected_devices() -> list[runtime.OpenCLDevice]:
    devices, _ = runtime.enumerate_devices()
    raw = os.environ.get(ENV_DEVICES, "").strip()
    if raw:
        words = [w.strip() for w in raw.split(",") if w.strip()]
        devices = [d for d in devices if any(w == d.id or w in d.name for w in words)]
    return devices


_DEVICES = selected_devices()

SIBLING_MODULES = {"test_conformance", "test_opencl_behaviour"}
BASIC_SIBLING_MODULES = {"test_conformance"}


def _twin_key(device: runtime.OpenCLDevice) -> tuple:
    x = device.extra
    return (device.kind, device.vendor, device.compute_units, x.get("platform"), x.get("runs_on_caller_thread"))


def _is_basic_sibling(device: runtime.OpenCLDevice) -> bool:
    platform = device.id.rsplit(":", 1)[0]
    return bool(device.extra.get("runs_on_caller_thread")) and any(
        d is not device and d.id.rsplit(":", 1)[0] == platform for d in _DEVICES
    )


def _is_twin(device: runtime.OpenCLDevice) -> bool:
    for d in _DEVICES:
        if d is device:
            return False
        if _twin_key(d) == _twin_key(device) and not d.problem():
            return True
    return False


def role(device: runtime.OpenCLDevice) -> str:
    """What a device under test gets (all of it when the environment variable names devices):

    - ``"full"``: every device test;
    - ``"sibling"``: a PoCL basic device next to its pthread device (same compiler, other
      work-group scheduling) gets ``BASIC_SIBLING_MODULES``, a twin (same device, other
      compiler version) ``SIBLING_MODULES``; both in float32 only and without the conformance
      suite's random specs, because the float16/float64 code paths and the random geometries
      are compiler-side and run in full on the first device; each distinct geometry or dtype
      is a kernel build of seconds;
    - ``"none"``: a twin's basic device, whose compiler (its twin's) and driver (the first
      platform's basic device) both run as siblings already.
    """
    if os.environ.get(ENV_DEVICES, "").strip():
        return "full"
    basic, twin = _is_basic_sibling(device), _is_twin(device)
    if basic and twin:
        return "none"
    return "sibling" if basic or twin else "full"


def _sibling_modules(device: runtime.OpenCLDevice) -> set[str]:
    return SIBLING_MODULES if _is_twin(device) else BASIC_SIBLING_MODULES


def skip_on_sibling(request: pytest.FixtureRequest, device_id: str) -> str | None:
    """Why a test is skipped on a device of role "sibling": float16 and float64 parametrizations
    (compiler-side code paths, run in full on the first device of the compiler and driver)."""
    if role_of(device_id) != "sibling":
        return None
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    for value in params.values():
        if str(value) in ("float16", "float64"):
            return f"{value} runs on the first device of this compiler and driver"
    return None


def role_of(device_id: str) -> str:
    """:func:`role` of the device under test with this id."""
    return role(next(d for d in _DEVICES if d.id == device_id))


#: Skip patterns of the conformance suite on a device of role "sibling" (see :func:`role`).
SIBLING_CONFORMANCE_SKIP = {
    "*float16*": "float16 runs on the first device of this compiler and driver",
    "*float64*": "float64 runs on the first device of this compiler and driver",
    "*/random": "random specs run on the first device of this compiler and driver",
}


def pytest_generate_tests(metafunc):
    if "cl_device" in metafunc.fixturenames:
        module = metafunc.module.__name__.rsplit(".", 1)[-1]
        ids = [d.id for d in _DEVICES if role(d) == "full" or (role(d) == "sibling" and module in _sibling_modules(d))]
        metafunc.parametrize("cl_device_id", ids or ["no-opencl-device"], scope="session")


@pytest.fixture
def cl_device(cl_device_id, request):
    """The clconv OpenCLDevice under test (the one the public API sees under that id; looked
    up per test, since a test may rebuild the plugin host and with it the device objects)."""
    if cl_device_id == "no-opencl-device":
        msg = "no OpenCL device found" + (f" matching {ENV_DEVICES}" if os.environ.get(ENV_DEVICES) else "")
        if os.environ.get(ENV_REQUIRE) == "1":
            pytest.fail(msg + f" and {ENV_REQUIRE}=1")
        pytest.skip(msg)
    reason = skip_on_sibling(request, cl_device_id)
    if reason:
        pytest.skip(reason)
    import clconv

    dev = next(d for d in clconv.list_devices() if d.id == cl_device_id)
    kind = os.environ.get(ENV_KIND, "").strip()
    if kind:
        if kind not in ("cpu", "gpu"):
            pytest.fail(f"{ENV_KIND}={kind!r} is not accepted: give cpu or gpu")
        dev.kind = kind
    problem = dev.problem()
    if problem:
        if os.environ.get(ENV_REQUIRE) == "1" and not any(not d.problem() for d in _DEVICES):
            pytest.fail(f"{cl_device_id} is unusable ({problem}) and no other device is")
        pytest.skip(f"{cl_device_id} is unusable: {problem}")
    return dev
