#!/usr/bin/env bash
# The MNIST-1D reference run of docs/mnist1d.md, exactly as documented, in a fresh folder.
# Usage: bash benchmarks/mnist1d_reference.sh [WORKDIR]   (2 workers; about 20 minutes on 2 cores)
# Writes the whole transcript to benchmarks/results/mnist1d_reference.txt.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work" && cd "$work"
export COLUMNS=160 TUNELOOP_STORAGE="$work/mnist1d.db"
log="$repo/benchmarks/results/mnist1d_reference.txt"
start=$(date +%s)
step() { echo; echo "\$ $*  [t=$(( $(date +%s) - start ))s]"; "$@"; }
{
  echo "tuneloop MNIST-1D reference run, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, in $work"
  step tuneloop check "$repo/examples/mnist1d_models.py"
  step tuneloop run "$repo/examples/mnist1d_models.py" --trials 36 --workers 2 --scheduler none --seed 0
  step tuneloop refine mnist1d-models -o mnist1d_models_r2.py
  step tuneloop run mnist1d_models_r2.py --trials 36 --workers 2 --seed 1
  step tuneloop rounds mnist1d-models
  step tuneloop finalize mnist1d-models-r2 --per model --rounds all --top 1 --seeds 5 --fit-on train+val --workers 2
  step tuneloop ensemble mnist1d-models-r2
  step tuneloop probe data mnist1d_models_r2.py --fractions 0.1,0.25,0.5,1.0 --seeds 2 --workers 2
  step tuneloop run "$repo/examples/mnist1d_cnn.py" --trials 30 --workers 2 --scheduler forecast:confidence=0.9 --seed 0
  echo; echo "total: $(( $(date +%s) - start ))s"
} 2>&1 | tee "$log"
