#!/usr/bin/env bash
# LibriSpeech recipe.
#
#   bash recipes/librispeech/run.sh --root /data/LibriSpeech [--exp DIR] [--stage N] [--stop-stage N] [key=value ...]
#
# --root  the LibriSpeech folder holding subset folders (train-clean-100, dev-clean, ...)
# --exp   where outputs go (default exp/librispeech)
# Stages: 0 prepare (train-clean-100 for training, dev-clean -> valid, test-clean -> test;
#         LibriSpeech is 16 kHz flac already, so nothing is cached; fairseq .tsv manifests too),
#         1 train (model=paper) -> $exp/train/model; a rerun resumes from its checkpoints.
#         2 extract -> $exp/units/units.txt, 3 prior -> $exp/prior, $exp/samples, 4 evaluate -> $exp/eval/report.md,
#         5 export -> $exp/listening/mushra/ (see recipes/stages.sh; extract.K=V, evaluate.K=V,
#         export.K=V pass K=V to that stage).
# Example: bash recipes/librispeech/run.sh --root /data/LibriSpeech 'corpus.subsets=[train-clean-360,dev-clean]'
set -euo pipefail
source "$(dirname "$0")/../stages.sh"
exp=${exp:-exp/librispeech}

if run_stage 0; then
  require_root
  audio-vq prepare corpus=librispeech root="$root" out="$exp/data" fairseq_tsv=true \
    'corpus.subsets=[train-clean-100,dev-clean,test-clean]' ${prepare_args[@]+"${prepare_args[@]}"}
fi

if run_stage 1; then
  audio-vq train data.manifest="$exp/data/manifest.jsonl" model=paper hydra.run.dir="$exp/train" \
    $(train_resume_flag "$exp/train") ${train_args[@]+"${train_args[@]}"}
fi

model_stages
