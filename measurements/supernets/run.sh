#!/bin/sh
# Train the AmericasNLP supernets, one process at a time on one thread, resumable (rerun after a kill: each
# `supernet train` resumes from its checkpoint.pt, or says it is already trained).  Same budget per kind: the
# task's measure recipe (early stopping on the largest subnet's dev loss), sandwich sampling.
# Start: cd <repo> && BENCH_DATA_DIR=../shared/data nohup nice -n 5 sh measurements/supernets/run.sh TASK... &
set -e
cd "$(dirname "$0")/../.."
for task in ${*:-bzd-es}; do
  for kind in hat layer-mos neuron-mos; do
    python -m bench supernet train suites/americasnlp.yaml --task "$task" --kind "$kind" --sampling sandwich \
      --threads 1 --no-progress --out "measurements/supernets/americasnlp/$task/$kind"
  done
done
