#!/usr/bin/env bash
# The main job: fine-tune all-MiniLM-L6-v2 on the shipped SST-2 sample (8,000 training sentences),
# evaluate on the full SST-2 dev set (872), save the model folder runs/sst2, and predict a few sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
bertkit train --task sst2 --data-dir examples/data/sst2 --model minilm --output-dir runs/sst2 \
    --epochs 1 --batch-size 32 --lr 5e-5 --max-seq-length 128 --seed 1
echo "dev metrics (runs/sst2/metrics.json):"
cat runs/sst2/metrics.json
echo "predictions for examples/sst2_inputs.jsonl:"
bertkit predict --model runs/sst2 --input examples/sst2_inputs.jsonl
