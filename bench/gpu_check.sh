#!/usr/bin/env bash
# Everything issue 10 needs a GPU for, in one device call (under 9 minutes: build, tests 200 s, benchmarks 240 s at most), from the
# repository root: the `gpu` tests, then `python -m bench.gpu`; logs and bench/results/gpu.json go to $OUT.
#
# The device image has PyTorch with CUDA, ninja and nvcc but not this project's MIDI packages. Here, once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl miditok==3.1.0 symusic==0.6.0 mido==1.3.3 pysmartdl
#   (flash-linear-attention too, for the side-by-side kernel timings: add flash-linear-attention and
#   its requirements that the image lacks, as `unzip -p .whl/NAME-*.whl '*/METADATA' | grep ^Requires-Dist` lists)
# then run:  bash bench/gpu_check.sh   with carry [".whl"].
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
# the kernel's build, timed once (later runs load torch's cached build)
python3 -c "import time, kernels.wkv7_cuda as k; t = time.time(); k.load_extension(); print(f'built in {time.time() - t:.0f} s')" \
    2>&1 | tee -a "$OUT/gpu.txt"
timeout 200 python3 -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log"
timeout 240 python3 -m bench.gpu 2>&1 | tee "$OUT/bench_gpu.log"
cp bench/results/gpu.json "$OUT/" 2>/dev/null || echo "bench/results/gpu.json was not written"
