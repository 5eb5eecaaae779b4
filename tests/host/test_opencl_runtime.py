"""OpenCL runtime pieces that need no device: sources, cache keys, status names, enumeration."""

from __future__ import annotations

import dataclasses
import re

import pytest

from clconv.backends.opencl import runtime
from clconv.errors import BuildError, UnsupportedError


def fake_device(**over):
    d = runtime.OpenCLDevice(
        id="opencl:9:9", backend="opencl", name="Fake", vendor="V", driver="1.0",
        extra={"platform": "P", "platform_version": "OpenCL 3.0 P 1", "opencl_version": "OpenCL 3.0"},
    )
    return dataclasses.replace(d, **over)


def test_sources_inline_their_headers_once():
    src = runtime.load_source("direct.cl")
    assert "CLCONV_COMMON_H" in src and '#include "common.h"' not in src
    assert src.count("CLCONV_INLINE int clconv_pad_index") == 1


#: Kernel files whose helpers must be always_inline (winograd.cl's and fft.cl's are left to the
#: compiler: forcing them cost build time for no measured speed; common.h says so).
FORCED_INLINE = ("common.h", "gemm.h", "im2col.cl", "depthwise.cl", "direct.cl", "direct_blocked.cl")


def test_kernel_helpers_are_always_inlined():
    """Every helper function of the FORCED_INLINE files is CLCONV_INLINE (inline +
    always_inline): pip's PoCL 3.0 (LLVM 14) keeps a plain ``inline`` function as large as the
    GEMM tile as a call, with its accumulators in memory, and im2col's GEMM ran at half speed
    there."""
    plain = []
    for path in sorted(runtime.kernels_dir().iterdir()):
        if path.name in FORCED_INLINE:
            for n, line in enumerate(path.read_text().splitlines(), 1):
                # a definition or declaration starting with inline / static inline (macro bodies too)
                if re.match(r"\s*(static\s+)?inline\b", line):
                    plain.append(f"{path.name}:{n}: {line.strip()}")
    assert not plain, "helpers declared plain inline (write CLCONV_INLINE):\n" + "\n".join(plain)
    assert "__attribute__((always_inline))" in runtime.load_source("common.h")


def test_kernel_helpers_take_no_restrict_pointers():
    """No helper (CLCONV_INLINE or inline) has a ``restrict`` parameter (nor winograd.cl's restrict
    OUT_PARAMS; helpers take OUT_HPARAMS): inlined, such a function makes LLVM emit
    llvm.experimental.noalias.scope.decl, which Oclgrind cannot run, and every kernel built
    with it fails to load there."""
    bad = []
    for path in sorted(runtime.kernels_dir().iterdir()):
        if path.suffix in (".cl", ".h"):
            src = path.read_text()
            for m in re.finditer(r"(?:CLCONV_INLINE|\binline)\s+\w+\s+(\w+)\s*\(([^)]*)\)", src):
                if re.search(r"\brestrict\b|\bOUT_PARAMS\b", m.group(2)):
                    bad.append(f"{path.name}: {m.group(1)}")
    assert not bad, "helpers with restrict parameters:\n" + "\n".join(bad)


def test_build_key_covers_source_options_device_and_version(monkeypatch):
    d = fake_device()
    base = runtime.build_key("src", ["-DA=1"], d)
    assert runtime.build_key("src", ["-DA=1"], d) == base
    assert runtime.build_key("src2", ["-DA=1"], d) != base
    assert runtime.build_key("src", ["-DA=2"], d) != base
    assert runtime.build_key("src", ["-DA=1"], fake_device(driver="1.1")) != base
    assert runtime.build_key("src", ["-DA=1"], fake_device(name="Other")) != base
    p2 = fake_device(extra={**d.extra, "platform_version": "OpenCL 3.0 P 2"})
    assert runtime.build_key("src", ["-DA=1"], p2) != base
    monkeypatch.setattr(runtime, "__version__", "999")
    assert runtime.build_key("src", ["-DA=1"], d) != base


def test_build_key_follows_included_headers_and_build_options(monkeypatch, tmp_path):
    """build_program's cache key changes with a header the kernel includes and with
    CLCONV_BUILD_OPTIONS (no build: the cache lookups are stubbed)."""
    for f in ("direct.cl", "common.h"):
        (tmp_path / f).write_text((runtime.kernels_dir() / f).read_text())
    monkeypatch.setattr(runtime, "kernels_dir", lambda: tmp_path)
    keys = []
    monkeypatch.setattr(runtime, "_load_binary", lambda ctx, dev, key, opts: keys.append((key, tuple(opts))) or object())

    class Ctx:
        int_ptr = 1

    def key():
        runtime.load_source.cache_clear()
        runtime.clear_memory_cache()
        runtime.build_program(fake_device(), "direct.cl", {"CLCONV_DTYPE": 32}, context=Ctx())
        return keys[-1]

    try:
        monkeypatch.delenv("CLCONV_BUILD_OPTIONS", raising=False)
        base = key()
        assert key() == base
        (tmp_path / "common.h").write_text((tmp_path / "common.h").read_text() + "\n/* changed */\n")
        header = key()
        assert header[0] != base[0]
        monkeypatch.setenv("CLCONV_BUILD_OPTIONS", "-cl-opt-disable")
        opts = key()
        assert opts[0] != header[0] and "-cl-opt-disable" in opts[1]
    finally:
        runtime.load_source.cache_clear()
        runtime.clear_memory_cache()


def test_status_codes_by_name():
    assert runtime.status_name(-5) == "CL_OUT_OF_RESOURCES"
    assert runtime.status_name(-11) == "CL_BUILD_PROGRAM_FAILURE"
    assert "-12345" in runtime.status_name(-12345)


def test_capability_checks_name_what_is_missing():
    d = fake_device(fp64=False, fp16=False, extra={"local_mem_bytes": 1024})
    with pytest.raises(UnsupportedError, match="cl_khr_fp64"):
        runtime.check_capabilities(d, fp64=True)
    with pytest.raises(UnsupportedError, match="cl_khr_fp16"):
        runtime.check_capabilities(d, fp16=True)
    with pytest.raises(UnsupportedError, match="1024 bytes of local memory; this kernel needs 4096"):
        runtime.check_capabilities(d, local_mem=4096)
    runtime.check_capabilities(fake_device(), fp64=True)


def test_kernel_cache_switch_is_validated(monkeypatch):
    monkeypatch.setenv("CLCONV_KERNEL_CACHE", "maybe")
    with pytest.raises(UnsupportedError, match="CLCONV_KERNEL_CACHE='maybe'"):
        runtime._disk_cache_enabled()


def test_enumeration_without_a_platform_is_empty_not_fatal(monkeypatch):
    def boom():
        raise RuntimeError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    monkeypatch.setattr(runtime.cl, "get_platforms", boom)
    devices, problems = runtime.enumerate_devices()
    assert devices == [] and "PLATFORM_NOT_FOUND_KHR" in problems[0]


def test_missing_source_is_a_build_error():
    with pytest.raises(BuildError, match="not found"):
        runtime.load_source("does-not-exist.cl")


@pytest.mark.parametrize(
    "env, allowed, count, expect",
    [
        ({}, {0, 1}, 2, "1"),                        # every CPU allowed: pin
        ({}, {0, 1, 2, 3}, 4, "1"),
        ({"POCL_AFFINITY": "0"}, {0, 1}, 2, "0"),    # the caller's choice stands
        ({"POCL_AFFINITY": "1"}, {0}, 2, "1"),
        ({}, {4, 5}, 8, None),                       # a cpuset: PoCL would pin to CPU 0 and abort
        ({}, {1}, 2, None),                          # narrowed by taskset
        ({}, {0}, 1, None),                          # one CPU: nothing to balance
    ],
)
def test_pocl_threads_are_pinned_only_where_every_cpu_is_allowed(monkeypatch, env, allowed, count, expect):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(allowed), raising=False)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: count)
    given = "POCL_AFFINITY" in env
    env = dict(env)
    changed = runtime.default_pocl_affinity(env)
    assert env.get("POCL_AFFINITY") == expect
    assert changed == (not given and expect == "1")


def _driver_dir(tmp_path, *names):
    d = tmp_path / "pocl"
    d.mkdir()
    for n in names:
        (d / f"libpocl-devices-{n}.so").write_bytes(b"")
    return [d]


@pytest.mark.parametrize(
    "env, drivers, expect",
    [
        ({}, ("basic", "pthread"), "basic pthread"),      # a CPU-only PoCL: add basic
        ({}, (), "basic pthread"),                        # built-in drivers only (pip's wheel)
        ({}, ("basic", "pthread", "cuda"), None),         # naming drivers would hide PoCL-CUDA
        ({}, ("pthread", "level0"), None),
        ({"POCL_DEVICES": "pthread"}, ("basic", "pthread"), "pthread"),  # the caller's choice stands
        ({"CLCONV_POCL_BASIC": "0"}, ("basic", "pthread"), None),        # switched off
    ],
)
def test_pocl_basic_device_is_added_only_where_it_hides_nothing(tmp_path, env, drivers, expect):
    env = dict(env)
    given = "POCL_DEVICES" in env
    changed = runtime.default_pocl_devices(env, _driver_dir(tmp_path, *drivers))
    assert env.get("POCL_DEVICES") == expect
    assert changed == (not given and expect is not None)


def test_pocl_driver_folders_come_from_icd_files(tmp_path):
    lib = tmp_path / "lib"
    (lib / "pocl").mkdir(parents=True)
    icd = tmp_path / "vendors"
    icd.mkdir()
    (icd / "pocl.icd").write_text(str(lib / "libpocl.so.2") + "\n")
    (icd / "other.icd").write_text("/nowhere/libOther.so\n")
    dirs = runtime._pocl_driver_dirs({"OCL_ICD_VENDORS": str(icd)})
    assert lib / "pocl" in dirs


def test_kernel_sources_found_in_an_installed_layout(tmp_path):
    """A non-editable install puts kernels_cl/ inside the package (pyproject's package-dir maps
    it to clconv.kernels_cl with its *.cl and *.h): the sources are found there, with no
    checkout beside it (before the fix, a wheel install on Python 3.11/3.12 reported them missing)."""
    import shutil
    import subprocess
    import sys
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from pathlib import Path

    root = Path(runtime.__file__).resolve().parents[3]
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"]["clconv.kernels_cl"] == "kernels_cl"
    assert "clconv.kernels_cl" in tool["packages"]
    assert set(tool["package-data"]["clconv.kernels_cl"]) == {"*.cl", "*.h"}
    site = tmp_path / "site"
    shutil.copytree(root / "clconv", site / "clconv", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "kernels_cl", site / "clconv" / "kernels_cl")
    code = "from clconv.backends.opencl import runtime; print(runtime.kernels_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == site / "clconv" / "kernels_cl"
    shutil.rmtree(site / "clconv" / "kernels_cl")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                         capture_output=True, text=True)
    assert out.returncode != 0 and "kernel sources (clconv.kernels_cl) are missing" in out.stderr
