#!/usr/bin/env bash
# One-shot GPU check: on one H100/H200 it finishes within 8 minutes and writes everything into one folder.
#
#     bash scripts/gpu_check.sh [OUT]          # OUT defaults to gpu-check-<UTC time>
#
# 1. installs graphc from this repository with its dev extras (an installed CUDA build of torch is kept);
# 2. runs the tests that run generated kernels (tests/conftest.py: KERNEL_BACKEND) with backend="triton";
# 3. runs the benchmark's GPU rows (python -m graphc.bench --quick --target gpu): percent of the measured HBM
#    bandwidth on the memory-bound cases, matmul at 4096 in fp32, fp16 and bf16 against torch.matmul, and the
#    digits and GPT training steps compiled against torch eager and torch.compile;
# 4. times graphc.compiler.precompile (cold and warm) of the digits and GPT steps (benchmarks/cold_compile.py);
# 5. precompiles the digits step in one process, then times its first compiled run on the GPU in another, with how
#    many kernels Triton compiled during that run (expected 0) and loaded from its cache, against a run without.
# OUT gets one log per stage, the benchmark's results.json and results.md, and summary.txt. Each stage has a time
# limit, so a hang costs its share only, and the limits together (device check included) fit in 8 minutes; a stage
# never runs past the 8 minutes either (it gets what is left). Without a GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
DEADLINE=$((SECONDS + 470))  # 8 minutes, less 10 s for the summaries

if ! timeout 30 python - > "$OUT/device.txt" 2>&1 <<'PY'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"no GPU present: torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)")
print(f"{torch.cuda.get_device_name()} (sm_{''.join(map(str, torch.cuda.get_device_capability()))}), "
      f"torch {torch.__version__}")
PY
then
    summary "$(tail -n 1 "$OUT/device.txt" || true); the GPU check did not run"
    exit 0
fi
summary "device: $(cat "$OUT/device.txt")"

stage() {  # stage NAME SECONDS COMMAND...: run COMMAND with a time limit, log to OUT/NAME.log, summarise
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    if [ $((DEADLINE - SECONDS)) -lt "$limit" ]; then
        limit=$((DEADLINE - SECONDS))
    fi
    if [ "$limit" -le 0 ]; then
        summary "$name: SKIPPED (the 8 minutes are spent)"
        return
    fi
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    if [ "$rc" = 0 ]; then
        summary "$name: ok in $((SECONDS - start)) s"
    else
        summary "$name: FAILED (exit $rc$([ "$rc" = 124 ] && echo ", stopped after $limit s")); see $name.log"
    fi
    tail -n 3 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
}

# limits: 30 (device check above) + 60 + 140 + 160 + 50 + 30 = 470 s
stage install 60 python -m pip install -q -e ".[dev]"
stage tests 140 env GRAPHC_TEST_BACKEND=triton python -m pytest -q tests/test_codegen.py tests/test_fusion.py \
    tests/test_reduction_parallel.py tests/test_codegen_random.py
stage bench 160 python -m graphc.bench --quick --target gpu --out "$OUT/bench"
stage precompile 50 python benchmarks/cold_compile.py --only precompile --repeats 1
stage first-gpu-run 30 python benchmarks/cold_compile.py --only first-gpu-run
summary "results: $OUT (bench/results.md has the GPU table)"
