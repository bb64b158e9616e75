#!/usr/bin/env bash
# The GPU check: the CUDA paths no CPU-only CI runs, end to end, in about 5 minutes on one GPU.
#
#   tests/gpu/check.sh            # on a CUDA machine, from anywhere (uses the `kdbench` and `python` on PATH)
#   KDBENCH_GPU_CHECK_DEVICE=cpu tests/gpu/check.sh   # the same steps on the CPU: checks the script itself
#   KDBENCH_GPU_CHECK_WORK=/tmp/gc tests/gpu/check.sh # keep the work folder (store, runs, export) afterwards
#   KDBENCH_GPU_CHECK_GRAPHS=1 tests/gpu/check.sh     # also time the CUDA-graph formats (about 2.5 minutes more)
#
# Steps: phantom data and a 112 px store; a stand-in teacher (mobilenet_v3_small) trained and cached on the GPU;
# one student distilled on the GPU with the fast path (AMP + the format rule, checked against float64) and
# the prefetching feed with augmentation; a 2-worker search sharing the one GPU; fp16 export; training steps/s per
# format (the evidence behind the CUDA rule); images/s of kdbench's training against a plain eager loop, in steady
# state; ONNX Runtime CUDA profiling. Any failure: exit 1 naming the step.
# Without CUDA: exit 77 (skipped), with the reason. Needs a CUDA build of torch and onnxruntime-gpu in the
# environment (a CPU wheel of torch reports no CUDA: skipped).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python}"
DEVICE="${KDBENCH_GPU_CHECK_DEVICE:-cuda}"
if [ "$DEVICE" = "cuda" ] && ! "$PY" "$HERE/gpu_check.py" cuda; then
    echo "skipped: no CUDA device visible to torch (torch.cuda.is_available() is False); nothing was run" >&2
    exit 77
fi
if [ -n "${KDBENCH_GPU_CHECK_WORK:-}" ]; then  # kept afterwards (e.g. to profile its export again)
    WORK="$KDBENCH_GPU_CHECK_WORK"; mkdir -p "$WORK"
else
    WORK="$(mktemp -d -t kdbench-gpu-check.XXXXXX)"
    trap 'rm -rf "$WORK"' EXIT
fi
START=$SECONDS

step() {  # step NAME COMMAND...: run it, print its time, stop the check on failure
    local name="$1"; shift
    echo "== $name (at $((SECONDS - START)) s): $*"
    if ! "$@" > "$WORK/step.log" 2>&1; then
        tail -n 30 "$WORK/step.log"
        echo "FAILED: $name (exit status above; log tail printed)"
        exit 1
    fi
    tail -n 3 "$WORK/step.log" | sed 's/^/   | /'
}

RAW="$WORK/raw"; STORE="$WORK/store"; TEACHER="$WORK/teacher.pt"
step "phantom data" kdbench --quiet data synth --out "$RAW" --videos-per-view 6 --frames 16 --seed 0
step "frame store" kdbench --quiet data prepare --echonet-dynamic "$RAW/EchoNet-Dynamic" --echonet-lvh "$RAW/EchoNet-LVH" \
    --tmed2 "$RAW/TMED2" --out "$STORE" --size 112 --frames-per-video 16 --workers 2
step "stand-in teacher on $DEVICE" kdbench --quiet teacher train --store "$STORE" --out "$TEACHER" \
    --arch mobilenet_v3_small --epochs 2 --batch-size 64 --device "$DEVICE"
step "teacher cache" kdbench --quiet teacher cache --store "$STORE" --teacher "$TEACHER" --device "$DEVICE"
step "distil on $DEVICE (fast path, augmented feed)" kdbench --quiet distill --store "$STORE" --student mobilenet_v3_small \
    --method vanilla --teacher "$TEACHER" --epochs 2 --batch-size 128 --augment-versions 2 --device "$DEVICE" \
    --out "$WORK/run"
step "the run's formats" "$PY" "$HERE/gpu_check.py" run "$WORK/run" --device "$DEVICE"
step "search space" "$PY" "$HERE/gpu_check.py" space "$WORK/space.toml"
step "2-worker search on one $DEVICE" kdbench --quiet search --config "$WORK/space.toml" --store "$STORE" \
    --teacher "$TEACHER" --run-dir "$WORK/runs" --study gpu --workers 2 --device "$DEVICE"
step "the search's runs" "$PY" "$HERE/gpu_check.py" study "$WORK/runs/gpu"
step "fp16 export" kdbench --quiet export --store "$STORE" --run "$WORK/run" --out "$WORK/export" --int8 "" --fp16
step "the fp16 variant" "$PY" "$HERE/gpu_check.py" export "$WORK/export"
FORMATS="nchw-fp32 nchw channels_last"  # KDBENCH_GPU_CHECK_GRAPHS=1: the CUDA-graph formats too (~75 s of compiling each)
[ -n "${KDBENCH_GPU_CHECK_GRAPHS:-}" ] && FORMATS="$FORMATS cudagraphs+nchw cudagraphs+channels_last"
echo "== training steps/s per format (at $((SECONDS - START)) s)"
"$PY" "$HERE/gpu_check.py" formats $FORMATS --device "$DEVICE" || { echo "FAILED: formats"; exit 1; }
echo "== images/s (at $((SECONDS - START)) s)"
"$PY" "$HERE/gpu_check.py" speed --device "$DEVICE" --frames "${KDBENCH_GPU_CHECK_FRAMES:-24000}" || { echo "FAILED: speed"; exit 1; }
if [ "$DEVICE" = "cuda" ]; then
    step "profile with ONNX Runtime CUDA" kdbench --quiet profile --target gpu --export "$WORK/export" \
        --out "$WORK/profiles" --runtimes onnxruntime-cuda --runs 1 --min-queries 20 --min-time 0.5 --max-time 2 --warmup 0.3
    "$PY" "$HERE/gpu_check.py" profile "$WORK/profiles/gpu/results.json" || { echo "FAILED: ORT CUDA profile"; exit 1; }
fi
echo "GPU check passed on $DEVICE in $((SECONDS - START)) s"
