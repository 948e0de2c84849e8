#!/usr/bin/env bash
# Head-only runs on Fashion Product Images: 2 label mappings x 2 heads x 2 weightings x 3 seeds,
# each trained with `fashion-hier features` on one cached ResNet-50 feature file and evaluated
# with `fashion-hier evaluate` (scored from that cache). Run from the repository root:
#   bash experiments/results/fpi/run_all.sh CACHE_DIR [RUNS_DIR]
# `fashion-hier X` below is `python -m fashion_hier.cli X` (the same entry point, no install needed).
set -euo pipefail
cache=${1:?usage: run_all.sh CACHE_DIR [RUNS_DIR]}
runs=${2:-runs/fpi}
cli="python -m fashion_hier.cli"
export TF_CPP_MIN_LOG_LEVEL=2
python - "$cache" <<'PY'
import json, sys
from pathlib import Path
manifest = json.loads((Path(sys.argv[1]) / "manifest.json").read_text())
if manifest["rows_done"] < manifest["num_rows"]:
    sys.exit(f"{sys.argv[1]}: {manifest['rows_done']} of {manifest['num_rows']} rows extracted; finish it first")
PY
mkdir -p "$runs"
for mapping in ${MAPPINGS:-paper colour_gender}; do
  for seed in ${SEEDS:-0 1 2}; do
    for head in message_passing independent; do
      for weighting in inverse_frequency none; do
        name=${mapping}_${head}_${weighting}_seed${seed}
        [ -f "$runs/$name/metrics.json" ] && continue
        start=$(date +%s.%N)
        $cli features --config experiments/configs/fpi_${mapping}.yaml --cache "$cache" --overwrite \
          --set output_dir="$runs" --set name="$name" --set model.head=$head \
          --set loss.weighting=$weighting --set data.seed=$seed > "$runs/$name.train.log" 2>&1
        end=$(date +%s.%N)
        echo "wall_seconds_features_command $(echo "$end - $start" | bc)" >> "$runs/$name.train.log"
        $cli evaluate --run "$runs/$name" --no-progress > "$runs/$name.evaluate.log" 2>&1
        echo "$(date +%T) $name done"
      done
    done
  done
done
