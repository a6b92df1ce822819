#!/usr/bin/env bash
# LJSpeech recipe (one speaker, 22.05 kHz).
#
#   bash recipes/ljspeech/run.sh --root /data/LJSpeech-1.1 [--exp DIR] [--stage N] [--stop-stage N] [key=value ...]
#
# --root  the folder holding wavs/ and metadata.csv
# --exp   where outputs go (default exp/ljspeech)
# Stages: 0 prepare (22.05 kHz sources cached at 16 kHz),
#         1 train (model=paper) -> $exp/train/model; a rerun resumes from its checkpoints.
#         2 extract -> $exp/units/units.txt, 3 prior -> $exp/prior, $exp/samples, 4 evaluate -> $exp/eval/report.md,
#         5 export -> $exp/listening/mushra/ (see recipes/stages.sh; extract.K=V, evaluate.K=V,
#         export.K=V pass K=V to that stage).
set -euo pipefail
source "$(dirname "$0")/../stages.sh"
exp=${exp:-exp/ljspeech}

if run_stage 0; then
  require_root
  audio-vq prepare corpus=ljspeech root="$root" out="$exp/data" cache_audio=true ${prepare_args[@]+"${prepare_args[@]}"}
fi

if run_stage 1; then
  audio-vq train data.manifest="$exp/data/manifest.jsonl" model=paper hydra.run.dir="$exp/train" \
    $(train_resume_flag "$exp/train") ${train_args[@]+"${train_args[@]}"}
fi

model_stages
