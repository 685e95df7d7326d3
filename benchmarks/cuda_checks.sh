#!/usr/bin/env bash
# The checks that need a CUDA device, as one script: the CUDA tests, then the per-step overhead,
# k trials sharing the GPU against one at a time, and many small models in one batched step.
# Each one's output goes to OUT_DIR (default: cuda-checks/) and to the terminal; the script
# stops at the first failure, and at once, with a clear message, where torch sees no CUDA
# device. Sized to take a few minutes on one GPU.
#
#   benchmarks/cuda_checks.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-cuda-checks}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1

if ! python -c 'import bench, torch' 2>/dev/null; then
    echo "cuda_checks: \`python\` ($(command -v python || echo none)) cannot import the" \
         "project and torch; activate its environment first (\`make setup\`," \
         "\`. .venv/bin/activate\`)" >&2
    exit 2
fi
if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "cuda_checks: torch $(python -c 'import torch; print(torch.__version__)') sees no" \
         "CUDA device on this machine; nothing was measured" >&2
    exit 2
fi

step() {  # step NAME COMMAND...: run it, keep its output in $out/NAME.txt
    local name="$1"
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.txt"
}

step device python -c 'import torch; p = torch.cuda.get_device_properties(0); print(torch.__version__, torch.version.cuda, p.name, p.total_memory // 2**20, "MiB")'
step tests python -m pytest -q tests/models/test_cuda.py
step overhead python benchmarks/overhead.py --device cuda --rounds 3
step scaling python benchmarks/scaling.py --device cuda --workers 1,2,4,8
step many_models python benchmarks/many_models.py --device cuda --ks 1,4,16,64
echo "cuda_checks: all done; outputs in $out/"
