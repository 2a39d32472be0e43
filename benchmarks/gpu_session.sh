#!/usr/bin/env bash
# The GPU figures in one prepared run on a lent GPU machine (its Python holds torch; avaudit's other
# libraries travel as wheels in .whl/, see benchmarks/README.md). Writes each log under $OUT.
#   bash benchmarks/gpu_session.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
if [ -f .whl/site.tar.xz ]; then  # av and decord unpacked from their wheels, xz-packed to fit the trip
    mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
    export PYTHONPATH=/tmp/site:$PWD
elif ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 AVAUDIT_CACHE_DIR=/tmp/avaudit-cache
workers=$(( $(nproc) - 1 ))
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -c \
  "import torch, av, numpy; print('torch', torch.__version__, 'av', av.__version__, 'numpy', numpy.__version__)"; } \
  2>&1 | tee "$OUT/machine.txt"
timeout 60 python3 -m avaudit doctor 2>&1 | tee "$OUT/doctor.txt"

# Real clips (the six that decode with sound), each copied 16 times under new names: copies, not links,
# so that every row is its own file to decode.
real=/tmp/real; rm -rf "$real"
for f in torchcodec_nasa_13013.mp4 moviepy_chaplin.mp4 mmaction2_tests_data_test.avi moviepy_fire2.mp4 \
         moviepy_example2.mp4 moviepy_no_duration.webm; do
    mkdir -p "$real/${f%%.*}"
    for i in $(seq -w 1 16); do cp "tests/data/realmedia/$f" "$real/${f%%.*}/${i}_$f"; done
done

timeout 150 python3 benchmarks/pipeline.py sample_videos --preset paper --device cuda --workers "$workers" \
    --batch-size 32 --rounds 1 2>&1 | tee "$OUT/pipeline_planted.txt"
timeout 150 python3 benchmarks/pipeline.py "$real" --preset paper --device cuda --workers "$workers" \
    --batch-size 32 --rounds 1 2>&1 | tee "$OUT/pipeline_real.txt"
timeout 200 python3 benchmarks/train_throughput.py sample_videos --preset paper --device cuda \
    --workers "$workers" --rows 640 2>&1 | tee "$OUT/train_throughput.txt"
