#!/bin/sh
# The AmericasNLP v2 measurement, one process at a time (one torch thread), resumable: rerun this script after a
# kill and it skips every (architecture, seed) already recorded.  Order: bzd-es, es-bzd, czn-es; each task's
# 30 architectures (seed 0), then its noise runs (the first 3 architectures, seeds 1 and 2).
# Start: cd <repo> && nohup nice -n 10 sh measurements/americasnlp/run-v2.sh > /tmp/americasnlp-v2.log 2>&1 &
set -e
cd "$(dirname "$0")/../.."
for task in bzd-es es-bzd czn-es; do
  python -m bench measure suites/americasnlp.yaml --task "$task" --n 30 --threads 1 --no-progress
  python -m bench measure suites/americasnlp.yaml --task "$task" --noise --threads 1 --no-progress
done
