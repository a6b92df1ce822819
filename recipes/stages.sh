# Shared by every recipe: parses the common options and decides which stages run.
#
#   bash recipes/<dataset>/run.sh [--stage N|name] [--stop-stage N|name] [--root DIR] [--exp DIR] [key=value ...]
#
# Stages, in order: 0 prepare, 1 train, 2 extract, 3 prior, 4 evaluate, 5 export.
# key=value arguments go to the stage whose keys they are: model*, data.*, train*, hydra.* to
# `audio-vq train`; extract.K=V, evaluate.K=V, export.K=V to that stage as K=V; prior.K=V (as
# prior.K=V) and train_prior.K=V (as K=V) to `audio-vq train-prior`, sample.K=V and
# prior_eval.K=V to `audio-vq sample` / `evaluate-prior`; device= to every stage that runs a
# model; everything else (corpus.*, split.*, ...) to `audio-vq prepare`.
set -euo pipefail

STAGES=(prepare train extract prior evaluate export)
stage=0
stop_stage=$((${#STAGES[@]} - 1))
root="${root:-}"
exp="${exp:-}"
overrides=()

stage_number() {  # a stage given by number or name -> its number
  local s=$1 i
  if [[ $s =~ ^[0-9]+$ ]]; then echo "$s"; return; fi
  for i in "${!STAGES[@]}"; do [[ ${STAGES[$i]} == "$s" ]] && { echo "$i"; return; }; done
  echo "unknown stage '$s' (stages: ${STAGES[*]})" >&2
  exit 2
}

recipe_usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --stage) stage=$(stage_number "$2"); shift 2 ;;
    --stop-stage) stop_stage=$(stage_number "$2"); shift 2 ;;
    --root) root=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    -h|--help) recipe_usage 0 ;;
    *=*) overrides+=("$1"); shift ;;
    *) echo "$0: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

prepare_args=()
train_args=()
extract_args=()
evaluate_args=()
export_args=()
prior_args=()
sample_args=()
prior_eval_args=()
for o in ${overrides[@]+"${overrides[@]}"}; do
  case $o in
    extract.*) extract_args+=("${o#extract.}") ;;
    evaluate.*) evaluate_args+=("${o#evaluate.}") ;;
    export.*) export_args+=("${o#export.}") ;;
    prior.*|prior=*) prior_args+=("$o") ;;
    train_prior.*) prior_args+=("${o#train_prior.}") ;;
    sample.*) sample_args+=("${o#sample.}") ;;
    prior_eval.*) prior_eval_args+=("${o#prior_eval.}") ;;
    device=*) train_args+=("$o"); extract_args+=("$o"); evaluate_args+=("$o"); export_args+=("$o")
              prior_args+=("$o"); sample_args+=("$o") ;;
    model*|data.*|data=*|train*|hydra.*) train_args+=("$o") ;;
    *) prepare_args+=("$o") ;;
  esac
done

# train_resume_flag RUN: train.resume=true when RUN already holds checkpoints (a rerun continues).
train_resume_flag() {
  if compgen -G "$1/checkpoints/step_*.pt" > /dev/null; then echo "train.resume=true"; fi
}

# run_stage N: true when stage N is inside [--stage, --stop-stage]; announces it.
run_stage() {
  local n=$1
  if (( n >= stage && n <= stop_stage )); then
    echo "=== stage $n: ${STAGES[$n]} ==="
    return 0
  fi
  return 1
}

require_root() {
  if [[ -z $root ]]; then
    echo "$0: give the dataset folder with --root DIR" >&2
    exit 2
  fi
}

# model_stages: stages 2-5 on $exp/train/model and $exp/data, the same for every recipe.
#   2 extract  -> $exp/units/units.txt (gslm: id|u1 u2 ..., + .meta.json, dict.km.txt); a pitch
#                 model's with the pitch stream as a second level (pitch_bins, default 32)
#   3 prior    -> $exp/prior/prior (train-prior on those units, speakers from the manifest;
#                 prior_steps steps), $exp/prior/eval/report.md (evaluate-prior), and samples
#                 rendered in the first speaker's voice: $exp/samples/unconditional/ (4) and
#                 $exp/samples/prompted/ (continuations of the first 4 utterances' first second);
#                 a pitch model's prior models the content (level 0), and $exp/pitch_prior/prior
#                 the pitch stream given the content, which sample draws second
#   4 evaluate -> $exp/eval/report.md (+ report.json, plots)
#   5 export   -> $exp/listening/mushra/ (a MUSHRA test: serve/ for the apps, private/ with key.csv and index.html)
model_stages() {
  local model="$exp/train/model"
  # a pitch model (model.decoder.pitch != none) carries the pitch stream through units and priors
  local pitch_model=""
  if [[ -f $model/config.yaml ]] && python -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1]))["model"]["decoder"]
sys.exit(0 if d.get("pitch", "none") != "none" else 1)' "$model/config.yaml"; then
    pitch_model=1
  fi
  if run_stage 2; then
    audio-vq extract model="$model" input="$exp/data" output="$exp/units/units.txt" format=gslm \
      ${pitch_model:+pitch_bins=${pitch_bins:-32}} ${extract_args[@]+"${extract_args[@]}"}
  fi
  if run_stage 3; then
    local speaker
    speaker=$(python -c 'import json, sys; print(sorted(json.load(open(sys.argv[1])))[0])' "$exp/data/speakers.json")
    audio-vq train-prior units="$exp/units/units.txt" manifest="$exp/data" hydra.run.dir="$exp/prior" \
      train.max_steps="${prior_steps:-2000}" ${pitch_model:+level=0} $(train_resume_flag "$exp/prior") \
      ${prior_args[@]+"${prior_args[@]}"}
    local pitch_prior=()
    if [[ -n $pitch_model ]]; then
      audio-vq train-prior units="$exp/units/units.txt" manifest="$exp/data" hydra.run.dir="$exp/pitch_prior" \
        train.max_steps="${prior_steps:-2000}" level=1 condition_level=0 \
        $(train_resume_flag "$exp/pitch_prior") ${prior_args[@]+"${prior_args[@]}"}
      pitch_prior=(pitch_prior="$exp/pitch_prior/prior")
    fi
    audio-vq evaluate-prior prior="$exp/prior/prior" out="$exp/prior/eval" ${prior_eval_args[@]+"${prior_eval_args[@]}"}
    audio-vq sample prior="$exp/prior/prior" model="$model" speaker="$speaker" out="$exp/samples/unconditional" \
      num_samples=4 ${pitch_prior[@]+"${pitch_prior[@]}"} ${sample_args[@]+"${sample_args[@]}"}
    audio-vq sample prior="$exp/prior/prior" model="$model" speaker="$speaker" out="$exp/samples/prompted" \
      prompt="$exp/units/units.txt" max_prompts=4 num_samples=1 ${pitch_prior[@]+"${pitch_prior[@]}"} \
      ${sample_args[@]+"${sample_args[@]}"}
  fi
  if run_stage 4; then
    audio-vq evaluate model="$model" data="$exp/data" out="$exp/eval" ${evaluate_args[@]+"${evaluate_args[@]}"}
  fi
  if run_stage 5; then
    audio-vq export-listening-test model="$model" data="$exp/data" kind=mushra out="$exp/listening/mushra" \
      ${export_args[@]+"${export_args[@]}"}
  fi
}
