#!/usr/bin/env bash
# Demo recipe: the embedded synthetic toy-speech corpus, end to end on two CPU cores.
#
#   bash recipes/demo/run.sh [--stage N|name] [--stop-stage N|name] [--exp DIR] [key=value ...]
#
# --exp   where everything goes (default exp/demo): synthetic/ (the generated corpus), data/ (manifest)
# Stages: 0 prepare (generates the corpus on first use, then writes data/manifest.jsonl; every
#         speaker reads the same 30 sentences, so conversions have parallel references),
#         1 train (model=small, train=demo: a fixed budget of train.max_steps = 400 steps; 11 min 51 s
#           on two cores with its F0 tracking, 2026-12-07, more on busy ones) -> $exp/train/model.
#         2 extract -> $exp/units/units.txt, 3 prior -> $exp/prior, $exp/samples, 4 evaluate -> $exp/eval/report.md,
#         5 export -> $exp/listening/mushra/ (see recipes/stages.sh; extract.K=V, evaluate.K=V,
#         export.K=V pass K=V to that stage).
# A rerun resumes training from $exp/train's checkpoints; delete $exp/train to start over.
set -euo pipefail
source "$(dirname "$0")/../stages.sh"
exp=${exp:-exp/demo}

if run_stage 0; then
  audio-vq prepare corpus=synthetic corpus.sentences=30 root="$exp/synthetic" out="$exp/data" \
    ${prepare_args[@]+"${prepare_args[@]}"}
fi

if run_stage 1; then
  audio-vq train data.manifest="$exp/data/manifest.jsonl" model=small train=demo data.crop_seconds=0.5 hydra.run.dir="$exp/train" \
    $(train_resume_flag "$exp/train") ${train_args[@]+"${train_args[@]}"}
fi

prior_steps=${prior_steps:-300}  # the demo's prior budget (steps, each prior): 2 min 31 s with the pitch prior, scoring and samples (README, 2026-12-07)
model_stages
