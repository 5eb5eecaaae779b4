#!/bin/bash
# One device check on an NVIDIA machine, run from the repository root: NVIDIA's OpenCL driver
# under clconv's device tests, then the benchmark suites with device arrays against PyTorch
# (cuDNN) on the same GPU. Results go to $OUT (default ./nvidia-check): platforms.txt,
# devices.txt, tests.log, bench.txt, bench.json.
#
# Where pip cannot reach an index, put wheels of clconv (`pip wheel --no-deps -w .whl .`),
# pyopencl, pytools, platformdirs and siphash24 for that machine's Python in .whl/ first: they
# are installed into /tmp/site. Machines whose driver installed no OpenCL ICD file (containers
# that mount the driver's libraries) get one written for libnvidia-opencl.so.1.
# TEST_S / BENCH_S: seconds for the tests and the benchmark (240 / 150; TEST_S=0 skips the tests);
# TEST_K: a pytest -k expression to run part of the tests.
# TUNE_S: when set, `clconv tune --suite all` (TUNE_BUDGET seconds per spec, default 1) runs
# before the benchmark, within TUNE_S seconds, and its database goes to $OUT/tuning.json;
# BENCH_UNTUNED=1 runs the benchmark before tuning too ($OUT/bench_untuned.*).
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/nvidia-check}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
fi
nvidia-smi -L
ls -la /etc/OpenCL/vendors 2>&1
lib=$(ls /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/local/nvidia/lib/libnvidia-opencl.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 2>/dev/null | head -1)
[ -z "$lib" ] && lib=$(find / -xdev -name 'libnvidia-opencl.so*' 2>/dev/null | head -1)
[ -z "$lib" ] && lib=$(find /usr/local/nvidia /usr/lib /usr/lib64 /opt -name 'libnvidia-opencl.so*' 2>/dev/null | head -1)
echo "opencl lib: $lib"
[ -z "$lib" ] && { ls /usr/local/nvidia /usr/local/nvidia/lib64 2>&1 | head -40; exit 5; }
mkdir -p /tmp/icd && echo "$lib" > /tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd/nvidia.icd
python3 -c "
import pyopencl as cl
for p in cl.get_platforms():
    for d in p.get_devices():
        print(p.name, p.version, '|', d.name, d.version, d.driver_version, 'CU', d.max_compute_units, 'MHz', d.max_clock_frequency, 'local', d.local_mem_size, 'wg', d.max_work_group_size, 'ext fp16', 'cl_khr_fp16' in d.extensions, 'fp64', 'cl_khr_fp64' in d.extensions)
" 2>&1 | tee $OUT/platforms.txt
export CLCONV_CACHE_DIR=/tmp/cc
clconv devices 2>&1 | tee $OUT/devices.txt
dev=$(python3 -c "
import clconv
print(next(d.id for d in clconv.list_devices() if 'NVIDIA' in d.name or 'H200' in d.name))")
echo "device: $dev"; [ -n "$dev" ] || exit 4
set -o pipefail
PYOPENCL_COMPILER_OUTPUT=1 python3 -c "
import numpy as np, clconv
x = np.ones((1, 8, 9, 9), np.float32); w = np.ones((8, 8, 3, 3), np.float32)
clconv.conv2d(x, w, padding=1, device='$dev')" > $OUT/compiler_output.txt 2>&1
if [ "${TEST_S:-240}" != 0 ]; then
CLCONV_TEST_DEVICES=$dev CLCONV_REQUIRE_DEVICE=1 timeout ${TEST_S:-240} python3 -P -m pytest tests/device ${TEST_K:+-k "$TEST_K"} -v -n 12 -p no:cacheprovider --timeout=90 --tb=short -rf > $OUT/tests.log 2>&1
echo "tests rc=$?"; echo "passed: $(grep -c ' PASSED' $OUT/tests.log) failed: $(grep -c ' FAILED' $OUT/tests.log) errors: $(grep -c ' ERROR' $OUT/tests.log)"
grep -E '^FAILED|^ERROR' $OUT/tests.log | cut -c1-220 | head -60; tail -4 $OUT/tests.log
fi
if [ -n "$TUNE_S" ]; then
  if [ -n "$BENCH_UNTUNED" ]; then  # the bench before tuning too, to compare
    timeout ${BENCH_S:-150} clconv bench --backend opencl --device $dev --arrays device --compare torch --repeats 5 --min-time 0.1 --json $OUT/bench_untuned.json > $OUT/bench_untuned.txt 2>&1
    echo "untuned bench rc=$?"; grep "geometric mean" $OUT/bench_untuned.txt
  fi
  timeout $TUNE_S clconv tune --suite all --device $dev --budget ${TUNE_BUDGET:-1} > $OUT/tune.txt 2>&1
  echo "tune rc=$?"; tail -5 $OUT/tune.txt; cp $CLCONV_CACHE_DIR/tuning.json $OUT/ 2>/dev/null
fi
timeout ${BENCH_S:-150} clconv bench --backend opencl --device $dev --arrays device --compare torch --repeats 5 --min-time 0.1 --json $OUT/bench.json 2>&1 | tee $OUT/bench.txt | tail -70
echo "bench rc=$?"
