#!/usr/bin/env bash
# VCTK recipe (VCTK-Corpus 0.80 or 0.92, auto-detected).
#
#   bash recipes/vctk/run.sh --root /data/VCTK-Corpus-0.92 [--exp DIR] [--stage N] [--stop-stage N] [key=value ...]
#
# --root  the corpus folder (holding wav48/ or wav48_silence_trimmed/, and txt/)
# --exp   where outputs go (default exp/vctk)
# Stages: 0 prepare (48 kHz sources cached at 16 kHz; 2 speakers held out for conversion tests),
#         1 train (model=paper) -> $exp/train/model; a rerun resumes from its checkpoints.
#         2 extract -> $exp/units/units.txt, 3 prior -> $exp/prior, $exp/samples, 4 evaluate -> $exp/eval/report.md,
#         5 export -> $exp/listening/mushra/ (see recipes/stages.sh; extract.K=V, evaluate.K=V,
#         export.K=V pass K=V to that stage).
# Example: bash recipes/vctk/run.sh --root /data/VCTK-Corpus-0.92 corpus.mic=mic2
set -euo pipefail
source "$(dirname "$0")/../stages.sh"
exp=${exp:-exp/vctk}

if run_stage 0; then
  require_root
  audio-vq prepare corpus=vctk root="$root" out="$exp/data" cache_audio=true \
    split.num_holdout_speakers=2 ${prepare_args[@]+"${prepare_args[@]}"}
fi

if run_stage 1; then
  audio-vq train data.manifest="$exp/data/manifest.jsonl" model=paper hydra.run.dir="$exp/train" \
    $(train_resume_flag "$exp/train") ${train_args[@]+"${train_args[@]}"}
fi

model_stages
