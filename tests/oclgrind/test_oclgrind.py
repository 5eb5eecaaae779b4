"""Run a small-shape subset of the device tests on Oclgrind, with its memory (out-of-bounds),
race and API checks on, and fail on anything it reports.

Oclgrind (Debian package ``oclgrind``) is a simulated OpenCL 1.2 device. Debian ships no
``.icd`` file for it, so this test writes one and points ``OCL_ICD_VENDORS`` at it, making
Oclgrind the only platform of the child pytest process. Without Oclgrind the test skips,
unless ``CLCONV_REQUIRE_OCLGRIND=1`` (CI sets it), which makes that a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

LIB = os.environ.get("CLCONV_OCLGRIND_LIB", "/usr/lib/oclgrind/liboclgrind-rt-icd.so")
ROOT = Path(__file__).resolve().parents[2]

# Small cases that together touch every kernel path: 1D/2D/3D, groups, depthwise, padding
# modes, dilation, transposed with crop and output_padding; float32 everywhere, and every
# kernel entry point in the other dtypes it is built for: c2d-basic (direct, direct-blocked,
# im2col, both Winograds, FFT), t2d-dcgan (the transposed forms), c3d-dw (depthwise),
# c2d-dil-aniso (Winograd's phases), c2d-1x1 in float64 (im2col's pointwise path).
SUBSET = (
    "(float32 and (c1d-basic or c1d-reflect or c2d-asym or c2d-groups or c2d-dw-mult or c2d-circular "
    "or c2d-replicate or c2d-dil-aniso or c3d-groups-reflect or c3d-dw or t1d-pad-op or t2d-asym-crop "
    "or t2d-op-dil or t2d-dw or t3d-groups or c2d-1x1)) "
    "or ((float16 or float64) and (c2d-basic or t2d-dcgan or c3d-dw or c2d-dil-aniso)) or (float64 and c2d-1x1)"
)

# The slowest cases under Oclgrind (10-22 s each, per kind) in the dtypes whose kernels other
# cases of the same tests run too: the inline filter transform's tile rows straddling a chunk
# in float16/float64 (its late-layer and groups cases run those kernels), the 1x1 GEMM reading a
# NumPy weight on 300 channels in float64 (its 140- and 64-channel cases do).
SLOW_REPEATS = (
    "(test_inline and straddle and (float16 or float64)) "
    "or (test_pointwise_reads_a_numpy and 1-300-7-40 and float64)"
)

# The fused GEMM + output transform and the GEMM transforming the filters itself are CPU forms
# (PoCL's CPU devices take them by default, a GPU only when forced): the "cpu" kind checks them,
# the "gpu" kind leaves them out (83 + 19 s of its 216 s).
CPU_FORMS = "test_fused or test_inline"

# What Oclgrind prints for a problem it finds in a kernel: each report names the kernel and
# the work-item ("Kernel: ...", "Entity: ...").
ERROR_PATTERNS = re.compile(
    r"^(Invalid (read|write)|Uninitialized value|.*data race|Work-group divergence|"
    r"\s*Kernel: |\s*Entity: )",
    re.M,
)
# API misuse reports start with "Oclgrind - " and name the function. pyopencl itself probes
# clGetDeviceInfo for parameters newer than OpenCL 1.2 when it builds programs and makes
# kernels (and handles the error): those reports are not clconv's and are not counted.
API_REPORT = re.compile(r"Oclgrind - OpenCL runtime error detected\s*\n\s*Function: (\w+)")
BENIGN_API = {"clGetDeviceInfo"}

# Kernels not run in some dtype: gemm_pointwise_t and transpose_weight are not built for
# float16; to_acc (a float copy of a float16 weight) runs for float16 only. calibrate.cl
# holds clconv's micro-benchmarks, no convolution.
NOT_RUN = {("gemm_pointwise_t", "16"), ("gemm_pointwise_raw", "16"), ("transpose_weight", "16"), ("to_acc", "32"), ("to_acc", "64")}
# Kernels only CPU devices run (the gpu-kind run never builds them): the 1x1 GEMM reading a NumPy
# weight in place sizes its local panel block for one work-item per work-group.
CPU_ONLY = {("gemm_pointwise_raw", "32"), ("gemm_pointwise_raw", "64")} | {
    # CPU_FORMS' kernels, which the "gpu" kind leaves out
    (k, dt) for k in ("filter_pack", "wino_gemm_out", "wino_gemm_out_inline", "wino_gemm_out_raw")
    for dt in ("16", "32", "64")
}
KERNEL_RE = re.compile(r"__kernel\s+void\s+(\w+)")


# Oclgrind claims every device type, and clconv takes it for a GPU; the algorithms choose
# other forms (tiles, staging in local memory, work-group shapes) for CPUs, so the subset
# runs a second time with the device taken for a CPU (tests/device/conftest.py).
@pytest.mark.parametrize("kind", ["gpu", "cpu"])
def test_small_shapes_run_clean_under_oclgrind(tmp_path, kind):
    if not Path(LIB).exists():
        msg = f"Oclgrind is not installed ({LIB} missing; apt-get install oclgrind)"
        if os.environ.get("CLCONV_REQUIRE_OCLGRIND") == "1":
            pytest.fail(msg + " and CLCONV_REQUIRE_OCLGRIND=1")
        pytest.skip(msg)
    icd = tmp_path / "oclgrind.icd"
    icd.write_text(LIB + "\n")
    env = dict(os.environ)
    env.update(
        OCL_ICD_VENDORS=str(icd),
        OCLGRIND_CHECK_API="1",
        OCLGRIND_DATA_RACES="1",
        # Oclgrind 21.10's uninitialized-value checker is not usable here: it aborts on
        # LLVM's `freeze` instruction and, once any earlier kernel ran in the process (the
        # device probe), reports writes of workspace lanes that are never read back. The
        # out-of-bounds and race checks stay on; the conformance suite's poisoned outputs
        # and the NaN-prefilled workspace tests cover unwritten data.
        OCLGRIND_UNINITIALIZED="0",
        CLCONV_CACHE_DIR=str(tmp_path / "cache"),
        CLCONV_REQUIRE_DEVICE="1",
        CLCONV_TEST_DEVICES="Oclgrind",
        CLCONV_TEST_DEVICE_KIND=kind,
        # Optimized builds, as every driver runs them: the bounds and race checks see the
        # accesses that execute. (Unoptimized ones, used while the uninitialized-value
        # checker was on, since it aborts on the `freeze` instructions optimizers emit,
        # simulated 1.45x slower: 221 s against 152 s for the "cpu" subset on 2 cores.)
        CLCONV_BUILD_OPTIONS="",
        PYTHONWARNINGS="ignore",
        CLCONV_KERNEL_LOG=str(tmp_path / "kernels.txt"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
    )
    cmd = [
        # -s: Oclgrind reports on stderr, which pytest would otherwise capture and show
        # only for failing tests
        sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "kernel_log", "-x",
        str(ROOT / "tests" / "device" / "test_opencl_algorithms.py"),
        # pyopencl arguments at element offsets into shared buffers, every algorithm
        str(ROOT / "tests" / "device" / "test_opencl_behaviour.py"),
        # Winograd's staged, streaming output stores (forced on for small shapes), and its input
        # transform reading x itself (edge rows loaded whole with lanes masked: the loads must
        # stay inside x), and for the "cpu" kind the fused GEMM + output transform (forced on:
        # Oclgrind is no PoCL) and the GEMM transforming the filters itself (forced on), which
        # covers filter_pack
        str(ROOT / "tests" / "device" / "test_winograd.py"),
        # the pointwise GEMM reading a NumPy weight in place (forced on: gathered values)
        str(ROOT / "tests" / "device" / "test_im2col.py"),
        "-k", f"(({SUBSET}) or test_device_out_overlapping or test_streamed or test_input_transform_reading_x "
              f"{f'or {CPU_FORMS} ' if kind == 'cpu' else ''}or test_pointwise_reads_a_numpy) and not ({SLOW_REPEATS})",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    found = ERROR_PATTERNS.findall(out)
    api = [f for f in API_REPORT.findall(out) if f not in BENIGN_API]
    assert not found and not api, "Oclgrind reported problems:\n" + out[-6000:]
    assert proc.returncode == 0, out[-6000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 20, "too few cases ran under Oclgrind:\n" + out[-3000:]
    # every kernel of kernels_cl/ ran, in every dtype it is used in
    ran = {tuple(line.split()) for line in (tmp_path / "kernels.txt").read_text().splitlines()}
    kernels = {k for f in (ROOT / "kernels_cl").glob("*.cl") if f.name != "calibrate.cl"
               for k in KERNEL_RE.findall(f.read_text())}
    missing = {(k, dt) for k in kernels for dt in ("16", "32", "64")} - NOT_RUN - ran
    if kind == "gpu":
        missing -= CPU_ONLY
    assert not missing, f"kernels the Oclgrind subset never ran: {sorted(missing)}"
