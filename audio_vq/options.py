"""Typed options: a dataclass per command (and per component) whose fields are the command's keys,
registered with Hydra's ConfigStore as the schema its YAML preset extends.

    # configs/inference/extract.yaml
    defaults:
      - extract_schema        # ExtractOptions: each key's type and its check
      - _self_
    batch_size: 16            # the preset: the value and the comment `--help` prints

The schema gives every key its type (Hydra refuses a key the schema lacks) and its checks (see
:func:`_checks`): its type's (a finite number, an integer, true or false) and, for a field made
with :func:`opt`, its own :class:`Check`, the one place its range is written. They run on each
command-line value as written (:func:`check_overrides`), on the composed config and in the stage
(:func:`validate`), with the one-line error ``key=value: expected <what>``. The defaults live in
the YAML presets, which say them once with their comments; a field's Python default is MISSING,
so a preset that forgot a key fails.

Every command is typed, its components nested as fields (ModelOptions, DataOptions, TrainOptions,
PriorOptions, SplitOptions); a group whose options have different keys (the quantizers, the
corpora) is typed by the chosen option's schema (GROUP_SCHEMAS). The model's and the corpora's
ranges are their constructors' and scanners' own checks; rules between keys stay in the stages
(DESIGN.md, "Typed options").
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Union

from omegaconf import MISSING, DictConfig, OmegaConf

from .config import ConfigError, is_int, is_number

SCHEMA_SUFFIX = "_schema"  # a command's schema is stored as <config name>_schema


@dataclass(frozen=True)
class Check:
    """What a key accepts: ``ok(value)``, and how an error says it (``expected <expected>``)."""

    ok: Callable[[Any], bool]
    expected: str

    def or_null(self, meaning: str = "") -> "Check":
        """This check, or null (``meaning`` says what null does, e.g. ``all``)."""
        null = f"null ({meaning})" if meaning else "null"
        return Check(lambda v: v is None or self.ok(v), f"{null} or {self.expected}")


def at_least(n: int) -> Check:
    return Check(lambda v: is_int(v) and v >= n, f"an integer >= {n}")


def positive(what: str = "a number") -> Check:
    return Check(lambda v: is_number(v) and v > 0, f"{what} > 0")


def one_of(choices: Callable[[], tuple] | tuple, null: str | None = None) -> Check:
    """One of ``choices`` (a tuple, or a function giving it when checked, for registries that
    load lazily); with ``null``, also null, described as ``null (<null>)`` (``null`` for "")."""

    def names() -> tuple:
        return choices() if callable(choices) else choices

    def ok(v) -> bool:
        return (null is not None and v is None) or v in names()

    nulls = "" if null is None else "null | " if null == "" else f"null ({null}) | "
    return Check(ok, _LazyText(lambda: nulls + " | ".join(names())))


def a_flag(null: str | None = None) -> Check:
    """true or false; with ``null``, also null (``null (<null>) | true | false``)."""
    if null is None:
        return Check(lambda v: isinstance(v, bool), "true or false")
    return Check(lambda v: v is None or isinstance(v, bool), f"null ({null}) | true | false")


def text(expected: str) -> Check:
    """A non-empty string (a path, a name)."""
    return Check(lambda v: isinstance(v, str) and v.strip() != "", expected)


class _LazyText:
    """A text made when it is shown (a registry's names, complete by then)."""

    def __init__(self, make: Callable[[], str]):
        self.make = make

    def __str__(self) -> str:
        return self.make()


def opt(check: Check | None = None, default: Any = MISSING) -> Any:
    """A field whose value the YAML preset gives, checked by ``check``."""
    return field(default=default, metadata={"check": check})


def check_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """Each ``key=value`` override, as written, against the field it sets in the composed
    ``cfg`` (the schema of the node holding the key, whichever option of a group chose it):
    Hydra alone would turn ``yes`` into true, and the key's range is its field's check. Keys
    no schema types (hydra.*, a dict's entries) are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text_ in overrides:
        override = parser.parse_override(text_)
        key = override.key_or_group
        if override.is_delete() or key.startswith("hydra."):
            continue
        parent, _, name = key.rpartition(".")
        schema = schema_of(OmegaConf.select(cfg, parent, default=None) if parent else cfg)
        found = None if schema is None else _fields(schema).get(name)
        if found is None:
            continue
        value = override.value()
        if _is_text(found) and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # as the schema stores it: speaker=103 is the name "103"
        _check(schema, found, value, key)


def schema_of(node: Any) -> type | None:
    """The dataclass a composed config node was typed by (None for an untyped node)."""
    if isinstance(node, DictConfig):
        kind = OmegaConf.get_type(node)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        kind = type(node)
    else:
        return None
    return kind if dataclasses.is_dataclass(kind) else None


@functools.cache
def _fields(schema: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(schema)}


@functools.cache
def _checks(schema: type, name: str) -> tuple[Check, ...]:
    """A field's checks: its type's, then its own range check (``opt(check)``). A number field
    without one must be a finite number (and an int an integer), a bool true or false (null too
    where Optional); a float is also checked as a finite number before its range (whose text
    speaks of the range only), while an int's or a bool's own check already says what it wants."""
    hint = typing.get_type_hints(schema)[name]
    own = _fields(schema)[name].metadata.get("check")
    return (*_type_checks(hint, own is not None), *([own] if own else []))


NUMBER = Check(is_number, "a finite number")
INTEGER = Check(is_int, "an integer")


def _type_checks(hint: Any, has_own: bool) -> tuple[Check, ...]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Union and type(None) in args:
        inner = _type_checks(next(a for a in args if a is not type(None)), has_own)
        return tuple(c.or_null() for c in inner)
    if hint is float:
        return (NUMBER,)
    if has_own:
        return ()
    return {int: (NUMBER, INTEGER), bool: (a_flag(),)}.get(hint, ())


def _check(schema: type, f: dataclasses.Field, value: Any, key: str) -> None:
    for check in _checks(schema, f.name):
        if not _passes(check, value):
            raise ConfigError(f"{key}={value!r}: expected {check.expected}")


def _is_text(f: dataclasses.Field) -> bool:
    return f.type in ("str", "Optional[str]", str)


def _passes(check: Check, value: Any) -> bool:
    try:
        return bool(check.ok(value))
    except (TypeError, ValueError):
        return False


def validate(cfg: DictConfig | Any, schema: type | None = None, prefix: str = "") -> None:
    """Apply every field's checks to ``cfg`` (the composed config, or a node of it), nested
    nodes by the schema each was typed by; ConfigError ``key=value: expected ...`` for the first
    that fails. ``schema``: for a config not typed by one (default: the config's own)."""
    schema = schema_of(cfg) or schema
    if schema is None:
        return
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        value = getattr(cfg, f.name) if dataclasses.is_dataclass(cfg) else cfg[f.name]
        nested = schema_of(value) or (hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else None)
        if nested is not None:
            validate(value, nested, f"{prefix}{f.name}.")
        else:
            _check(schema, f, value, f"{prefix}{f.name}")


# -- the commands -------------------------------------------------------------------------------


def _unit_formats() -> tuple:
    from .units.formats import FORMATS  # numpy and torch: loaded when a format is checked

    return FORMATS


SPLITS = ("train", "valid", "test")


@dataclass
class ExtractOptions:
    """`audio-vq extract` (configs/inference/extract.yaml says what each key does)."""

    model: str = opt(text("a model directory"))
    input: str = opt(text("an input (manifest, folder, file, file list or .tsv)"))
    output: str = opt(text("an output file (or folder for zerospeech)"))
    format: str = opt(one_of(_unit_formats))
    deduplicate: Optional[bool] = opt(a_flag(null="the format's default"))
    split: Optional[str] = opt(one_of(SPLITS, null=""))
    batch_size: int = opt(at_least(1))
    num_workers: int = opt(at_least(0))
    block_size: int = opt(at_least(1))
    chunk_seconds: float = opt(positive("seconds"))
    shard: int = opt(at_least(0))
    num_shards: int = opt(at_least(1))
    merge: bool = opt(a_flag())
    threads: Optional[int] = opt(at_least(1).or_null())
    device: str = opt()
    levels: Optional[int] = opt(at_least(1).or_null("all"))
    pitch_bins: Optional[int] = opt(at_least(1).or_null("no pitch stream"))


@dataclass
class UnitsConvertOptions:
    """`audio-vq units-convert` (configs/inference/units_convert.yaml)."""

    input: str = opt(text("a unit file or folder"))
    output: str = opt(text("an output file (or folder for zerospeech)"))
    format: str = opt(one_of(_unit_formats))
    input_format: Optional[str] = opt(one_of(_unit_formats, null="detect"))
    deduplicate: Optional[bool] = opt(a_flag(null="as the input"))
    model: Optional[str] = opt()


@dataclass
class DecodeOptions:
    """The keys every decoding command shares (configs/inference/decode.yaml)."""

    model: str = opt()  # a model directory (rendering checks that it exists)
    out: str = opt(text("an output folder"))
    batch_size: int = opt(at_least(1))
    seed: int = opt(at_least(0))
    temperature: float = opt(positive())
    voiced_temperature: Optional[float] = opt(positive().or_null("= temperature"))
    argmax: bool = opt(a_flag())
    chunk_seconds: float = opt(positive("seconds"))
    backend: str = opt(one_of(("auto", "numba", "torch")))
    threads: Optional[int] = opt(at_least(1).or_null())
    device: str = opt()
    levels: Optional[int] = opt(at_least(1).or_null("all"))
    overwrite: bool = opt(a_flag())


@dataclass
class ReconstructOptions(DecodeOptions):
    """`audio-vq reconstruct` (configs/inference/reconstruct.yaml)."""

    input: str = opt(text("an input (manifest, folder or file)"))
    speaker: Optional[str] = opt()


@dataclass
class ConvertOptions(DecodeOptions):
    """`audio-vq convert` (configs/inference/convert.yaml)."""

    input: str = opt(text("an input (manifest, folder or file)"))
    target_speaker: Any = opt()  # a name, a list (a,b,c) or all: the stage reads it


@dataclass
class SynthesizeOptions(DecodeOptions):
    """`audio-vq synthesize` (configs/inference/synthesize.yaml)."""

    units: str = opt(text("a unit file"))
    speaker: str = opt(text("a speaker name"))


def _sample_formats() -> tuple:
    """The unit formats sample writes: those without codebook vectors (it has no model codebook at hand)."""
    from .units.formats import WRITERS

    return tuple(name for name, writer in WRITERS.items() if not writer.needs_codebook)


@dataclass
class SampleOptions(DecodeOptions):
    """`audio-vq sample` (configs/inference/sample.yaml; temperature is the prior's there)."""

    prior: str = opt(text("a prior directory"))  # the stage checks that each prior exists
    bottom_prior: Optional[str] = opt()
    pitch_prior: Optional[str] = opt()
    num_samples: int = opt(at_least(1))
    seconds: float = opt(positive("seconds"))
    speaker: str = opt(text("a speaker name"))
    prompt: Optional[str] = opt()
    prompt_seconds: float = opt(positive("seconds"))
    max_prompts: Optional[int] = opt(at_least(1).or_null())
    top_k: Optional[int] = opt(at_least(1).or_null())
    top_p: Optional[float] = opt(Check(lambda v: is_number(v) and 0 < v <= 1, "a number in (0, 1]").or_null())
    decoder_temperature: float = opt(positive())
    format: str = opt(one_of(_sample_formats))


def _list_of(ok: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A check of a list (a config's or Python's) whose every item passes ``ok``."""
    return lambda v: (OmegaConf.is_list(v) or isinstance(v, (list, tuple))) and all(ok(x) for x in v)


_labels = _list_of(lambda x: isinstance(x, str))


@dataclass
class EvaluateOptions(DecodeOptions):
    """`audio-vq evaluate` (configs/inference/evaluate.yaml)."""

    data: str = opt(text("a manifest.jsonl or its folder"))
    alignments: Optional[str] = opt()
    silence: Any = opt(Check(_labels, "a list of labels (strings), e.g. [sil, sp]"))
    split: Any = opt()  # a name or a list: the stage reads and checks it
    max_utterances: int = opt(at_least(2))
    mfcc_kmeans: bool = opt(a_flag())
    voice_metrics: bool = opt(a_flag())
    abx_max_triples: int = opt(at_least(1))
    reconstruct_utterances: int = opt(at_least(0))
    excerpt_seconds: float = opt(positive("seconds"))
    metrics_csv: Optional[str] = opt()


@dataclass
class EvaluatePriorOptions:
    """`audio-vq evaluate-prior` (configs/inference/evaluate_prior.yaml)."""

    prior: str = opt(text("a prior directory"))  # the stage checks that it exists
    units: Optional[str] = opt()
    out: str = opt(text("an output folder"))
    manifest: Optional[str] = opt()
    num_samples: int = opt(at_least(1))
    seed: int = opt(at_least(0))


def _fraction() -> Check:
    return Check(lambda v: is_number(v) and 0 <= v < 1, "a fraction in [0, 1)")


@dataclass
class SplitOptions:
    """prepare's ``split`` keys: the seeded train / valid / test split per speaker."""

    valid: float = opt(_fraction())
    test: float = opt(_fraction())
    seed: int = opt(Check(is_int, "an integer"))
    holdout_speakers: Any = opt(
        Check(lambda v: all(isinstance(s, (str, int)) for s in v), "a list of speaker names, e.g. [p225,p226]")
    )
    num_holdout_speakers: int = opt(at_least(0))
    use_corpus_splits: bool = opt(a_flag())


@dataclass
class PrepareOptions:
    """`audio-vq prepare` (configs/prepare.yaml); ``corpus`` is the chosen corpus's own keys."""

    corpus: Any = opt()
    root: str = opt(text("a folder"))
    out: str = opt(text("a folder"))
    sample_rate: int = opt(Check(lambda v: is_int(v) and v > 0, "a positive integer (Hz)"))
    cache_audio: bool = opt(a_flag())
    num_workers: int = opt(at_least(0))
    fairseq_tsv: bool = opt(a_flag())
    min_seconds: float = opt(Check(lambda v: is_number(v) and v >= 0, "a number of seconds >= 0"))
    split: SplitOptions = field(default_factory=SplitOptions)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# train.compile_backend: inductor generates fused code; aot_eager traces the model (graph breaks
# and all) without generating code, in seconds (the GPU check's dry run); cudagraphs captures without fusing
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")
SCHEDULES = ("cosine", "constant")


def _loggers() -> tuple:
    from .loggers import LOGGERS

    return tuple(LOGGERS)


_logger_list = _list_of(lambda name: name in _loggers())


@dataclass
class WandbOptions:
    """train.wandb: the Weights & Biases run (with train.loggers=[..., wandb])."""

    project: str = opt(text("a project name"))
    entity: Optional[str] = opt()
    mode: str = opt(one_of(("offline", "online", "disabled")))


@dataclass
class MLflowOptions:
    """train.mlflow: the MLflow run (with train.loggers=[..., mlflow])."""

    tracking_uri: Optional[str] = opt()
    experiment: str = opt(text("an experiment name"))


def _memory_policies() -> tuple:
    from .memory import POLICIES

    return POLICIES


@dataclass
class TrainOptions:
    """The training loop's keys (configs/train/*.yaml), a component of train and train-prior
    (their ``train`` field)."""

    batch_size: int = opt(at_least(1))
    lr: float = opt(positive("a learning rate"))
    betas: Any = opt(
        Check(lambda v: len(v) == 2 and all(is_number(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)")
    )
    weight_decay: float = opt(Check(lambda v: is_number(v) and v >= 0, "a number >= 0"))
    lr_schedule: str = opt(one_of(SCHEDULES))
    warmup_steps: int = opt(at_least(0))
    min_lr_ratio: float = opt(Check(lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]"))
    schedule_steps: Optional[int] = opt(at_least(1).or_null())
    grad_clip: Optional[float] = opt(positive().or_null())
    max_steps: int = opt(at_least(1))
    max_minutes: Optional[float] = opt(positive("minutes").or_null())
    precision: str = opt(one_of(PRECISIONS))
    threads: Any = opt(
        Check(
            lambda v: v is None or v == "auto" or (is_int(v) and v >= 1),
            "auto, null (torch's default) or an integer >= 1",
        )
    )
    memory: str = opt(one_of(_memory_policies))
    activation_checkpointing: bool = opt(a_flag())
    compile: bool = opt(a_flag())
    compile_backend: str = opt(one_of(COMPILE_BACKENDS))
    seed: int = opt(at_least(0))
    log_every: int = opt(at_least(1))
    valid_every: int = opt(at_least(1))
    valid_batches: int = opt(at_least(1))
    audio_every: int = opt(at_least(1))
    checkpoint_every: int = opt(at_least(1))
    keep_best: bool = opt(a_flag())
    keep_checkpoints: int = opt(at_least(1))
    resume: bool = opt(a_flag())
    max_nonfinite: int = opt(at_least(1))
    loggers: Any = opt(Check(_logger_list, _LazyText(lambda: "a list of " + " | ".join(_loggers()))))
    wandb: WandbOptions = field(default_factory=WandbOptions)
    mlflow: MLflowOptions = field(default_factory=MLflowOptions)


WORKERS = Check(lambda v: v == "auto" or (is_int(v) and v >= 0), "auto or an integer >= 0")


def _pitch_trackers() -> tuple:
    from .pitch import TRACKERS  # numpy: loaded when the key is checked

    return tuple(TRACKERS)


# -- train: the model's components (configs/model/). Their ranges are the constructors' own
# checks (the same for a Python caller), reported as `model: ...`; the schemas type the keys.


@dataclass
class EncoderOptions:
    """model.encoder: :class:`~audio_vq.models.encoder.Encoder`'s arguments."""

    channels: Any = opt()  # an int, or a list per layer
    strides: List[int] = opt()
    kernel_sizes: Optional[List[int]] = opt()
    residual_layers: int = opt()


@dataclass
class VectorQuantizerOptions:
    """model.quantizer (vector, ema): :class:`~audio_vq.models.quantizer.VectorQuantizer`'s arguments."""

    kind: str = opt()
    dim: int = opt()
    codebook_size: int = opt()
    commitment_weight: float = opt()
    ema: bool = opt()
    ema_decay: float = opt()
    ema_epsilon: float = opt()
    kmeans_init: bool = opt()
    kmeans_iters: int = opt()
    restart_after: Optional[int] = opt()
    cosine: bool = opt()
    lookup_dim: Optional[int] = opt()


@dataclass
class ResidualQuantizerOptions(VectorQuantizerOptions):
    """model.quantizer (residual): each level a vector quantizer."""

    num_quantizers: int = opt()
    quantizer_dropout: float = opt()


@dataclass
class HierarchicalQuantizerOptions(VectorQuantizerOptions):
    """model.quantizer (hierarchical): each level a vector quantizer, and the top encoder."""

    top_strides: List[int] = opt()
    top_channels: int = opt()
    top_kernel_sizes: Optional[List[int]] = opt()
    top_residual_layers: int = opt()


@dataclass
class GumbelQuantizerOptions:
    """model.quantizer (gumbel): :class:`~audio_vq.models.quantizer.GumbelQuantizer`'s arguments."""

    kind: str = opt()
    dim: int = opt()
    codebook_size: int = opt()
    temperature: float = opt()
    min_temperature: float = opt()
    temperature_decay: float = opt()
    diversity_weight: float = opt()


@dataclass
class WaveNetOptions:
    """model.decoder: :class:`~audio_vq.models.wavenet.WaveNet`'s arguments."""

    stacks: int = opt()
    layers_per_stack: int = opt()
    kernel_size: int = opt()
    residual_channels: int = opt()
    gate_channels: int = opt()
    skip_channels: int = opt()
    speaker_dim: int = opt()
    upsample: str = opt()
    upsample_strides: Optional[List[int]] = opt()
    cond_layers: int = opt()
    cond_kernel_size: int = opt()
    output: str = opt()
    mu_law_channels: int = opt()
    mixtures: int = opt()
    pitch: str = opt()
    harmonics: int = opt()


@dataclass
class AdversaryOptions:
    """model.adversary: the speaker classifier behind a gradient reversal (weight 0: none)."""

    weight: float = opt()
    hidden_channels: int = opt()


@dataclass
class AuxMelOptions:
    """model.aux_mel: :class:`~audio_vq.models.aux_mel.MelDecoder` (weight 0: none)."""

    weight: float = opt()
    n_mels: int = opt()
    channels: int = opt()
    layers: int = opt()
    kernel_size: int = opt()


@dataclass
class CPCOptions:
    """model.cpc: :class:`~audio_vq.models.cpc.CPCLoss` (weight 0: none)."""

    weight: float = opt()
    context_channels: int = opt()
    steps: int = opt()
    negatives: int = opt()


@dataclass
class ModelOptions:
    """model (configs/model/*.yaml): :meth:`VQVAE.from_config`'s groups; ``quantizer`` is
    typed by the chosen option's own schema (model/quantizer=vector | gumbel | ...)."""

    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    quantizer: Any = opt()
    decoder: WaveNetOptions = field(default_factory=WaveNetOptions)
    jitter: float = opt()
    input_noise: float = opt()
    input_dropout: float = opt()
    adversary: AdversaryOptions = field(default_factory=AdversaryOptions)
    aux_mel: AuxMelOptions = field(default_factory=AuxMelOptions)
    cpc: CPCOptions = field(default_factory=CPCOptions)


@dataclass
class DataOptions:
    """data (configs/data/default.yaml): what the VQ-VAE trains on."""

    manifest: Optional[str] = opt()  # the stage checks that it exists
    synthetic_dir: Optional[str] = opt()
    sample_rate: int = opt(Check(lambda v: is_int(v) and v > 0, "a positive integer (Hz)"))
    crop_seconds: float = opt(positive("seconds"))
    num_workers: Any = opt(WORKERS)
    pitch_tracker: str = opt(one_of(_pitch_trackers))


@dataclass
class TrainCommandOptions:
    """`audio-vq train` (configs/train.yaml)."""

    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    device: str = opt()


# -- train-prior


@dataclass
class PriorOptions:
    """prior (configs/prior/*.yaml): :class:`~audio_vq.models.prior.UnitPrior`'s arguments."""

    dim: int = opt(at_least(1))
    layers: int = opt(at_least(1))
    heads: int = opt(at_least(1))
    max_len: int = opt(Check(lambda v: is_int(v) and v >= 2, "an integer >= 2 (the start token and a unit)"))
    dropout: float = opt(Check(lambda v: 0 <= v < 1, "a number in [0, 1)"))
    max_duration: int = opt(at_least(1))


@dataclass
class PriorDataOptions:
    """train-prior's data: crops are cut in memory."""

    num_workers: Any = opt(WORKERS)


@dataclass
class TrainPriorOptions:
    """`audio-vq train-prior` (configs/train_prior.yaml)."""

    prior: PriorOptions = field(default_factory=PriorOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    units: str = opt(text("a unit file"))
    test: Optional[str] = opt(text("a unit file").or_null())
    test_fraction: float = opt(Check(lambda v: 0 < v < 1, "a fraction in (0, 1)"))
    valid: Optional[str] = opt(text("a unit file").or_null())
    valid_fraction: float = opt(_fraction())
    manifest: Optional[str] = opt()
    codebook_size: Optional[int] = opt(at_least(1).or_null())
    deduplicate: bool = opt(a_flag())
    level: Optional[int] = opt(Check(lambda v: is_int(v) and v >= 0, "a level index >= 0").or_null())
    condition_level: Optional[int] = opt(Check(lambda v: is_int(v) and v >= 0, "a level index >= 0").or_null())
    data: PriorDataOptions = field(default_factory=PriorDataOptions)
    device: str = opt()


# -- prepare's corpora (configs/corpus/): the scanners check their own ranges (the same for a
# Python caller); the schemas type the keys.


@dataclass
class FolderCorpusOptions:
    """corpus=folder: :func:`audio_vq.corpora.folder.scan`'s arguments."""

    name: str = opt()
    extensions: Any = opt()  # a list of suffixes, one suffix, or null
    speaker_regex: Optional[str] = opt()
    default_speaker: Optional[str] = opt()
    alignment_extensions: Any = opt()
    text_extensions: Any = opt()


@dataclass
class LibriSpeechCorpusOptions:
    """corpus=librispeech: :func:`audio_vq.corpora.librispeech.scan`'s arguments."""

    name: str = opt()
    subsets: Any = opt()  # a list of subset folder names, or null
    use_subset_splits: bool = opt()


@dataclass
class LJSpeechCorpusOptions:
    """corpus=ljspeech: :func:`audio_vq.corpora.ljspeech.scan`'s arguments."""

    name: str = opt()
    speaker: str = opt()
    text: str = opt()


@dataclass
class SyntheticCorpusOptions:
    """corpus=synthetic: :func:`audio_vq.corpora.synthetic.scan`'s arguments."""

    name: str = opt()
    num_speakers: int = opt()
    minutes: float = opt()
    seed: int = opt()
    sample_rate: int = opt()
    min_seconds: float = opt()
    max_seconds: float = opt()
    num_workers: int = opt()
    sentences: int = opt()


@dataclass
class LhotseCorpusOptions:
    """corpus=lhotse: :func:`audio_vq.corpora.lhotse.scan`'s arguments."""

    name: str = opt()
    default_speaker: Optional[str] = opt()
    use_file_splits: bool = opt()


@dataclass
class HFCorpusOptions:
    """corpus=hf: :func:`audio_vq.corpora.hf.scan`'s arguments."""

    name: str = opt()
    audio_column: str = opt()
    speaker_column: Optional[str] = opt()
    id_column: Optional[str] = opt()
    text_column: Optional[str] = opt()
    default_speaker: Optional[str] = opt()
    use_splits: bool = opt()


@dataclass
class VCTKCorpusOptions:
    """corpus=vctk: :func:`audio_vq.corpora.vctk.scan`'s arguments."""

    name: str = opt()
    version: str = opt()
    mic: str = opt()


# -- the listening commands


LISTENING_SPLITS = ("auto", "test", "valid", "train", "all")
LOUDNESS_RANGE_LUFS = (-70.0, 0.0)  # BS.1770's absolute gate .. full scale


@dataclass
class ExportListeningTestOptions(DecodeOptions):
    """`audio-vq export-listening-test` (configs/inference/export_listening_test.yaml)."""

    data: str = opt(text("a manifest (manifest.jsonl or its folder)"))
    kind: str = opt()  # a name of stages/listening/kinds.py's table, which the stage checks it against
    num_utterances: int = opt(at_least(1))
    split: str = opt(one_of(LISTENING_SPLITS))
    max_seconds: Optional[float] = opt(Check(lambda v: v > 0, "seconds > 0").or_null())
    min_seconds: float = opt(Check(lambda v: v >= 0, "seconds >= 0"))
    targets: Any = opt()  # null, all, a number or names: the stage reads it
    systems: Any = opt()  # null, or name -> folder (+systems.<name>=<folder>): the stage checks each
    include_reference: bool = opt(a_flag())
    loudness: float = opt(
        Check(
            lambda v: LOUDNESS_RANGE_LUFS[0] < v < LOUDNESS_RANGE_LUFS[1],
            f"a loudness in LUFS between {LOUDNESS_RANGE_LUFS[0]:g} and {LOUDNESS_RANGE_LUFS[1]:g}",
        )
    )
    peak_ceiling: float = opt(Check(lambda v: v <= 0, "dBFS <= 0"))
    sample_rate: Optional[int] = opt(Check(lambda v: is_int(v) and v > 0, "a rate in Hz > 0").or_null())
    strict: bool = opt(a_flag())
    test_name: Optional[str] = opt()
    webmushra_prefix: Optional[str] = opt()
    beaqlejs_prefix: Optional[str] = opt()


@dataclass
class ListeningResultsOptions:
    """`audio-vq listening-results` (configs/inference/listening_results.yaml)."""

    results: str = opt(text("a result file (or a folder of BeaqleJS results)"))
    key: str = opt(text("a key.csv (or the export folder)"))
    out: Optional[str] = opt()
    kind: str = opt()  # auto or a name of the kinds table (the stage checks it)
    listener: str = opt(text("auto or a column name"))
    screening: bool = opt(a_flag())
    confidence: float = opt(Check(lambda v: 0 < v < 1, "a level in (0, 1), e.g. 0.95"))


#: config name -> its schema (stored as <name>_schema)
SCHEMAS: dict[str, type] = {
    "extract": ExtractOptions,
    "units_convert": UnitsConvertOptions,
    "reconstruct": ReconstructOptions,
    "convert": ConvertOptions,
    "synthesize": SynthesizeOptions,
    "sample": SampleOptions,
    "evaluate": EvaluateOptions,
    "evaluate_prior": EvaluatePriorOptions,
    "prepare": PrepareOptions,
    "train": TrainCommandOptions,
    "train_prior": TrainPriorOptions,
    "export_listening_test": ExportListeningTestOptions,
    "listening_results": ListeningResultsOptions,
}
#: (config group, option) -> the schema its YAML lists first (group_schema_name): the options of a
#: group whose keys differ (a quantizer, a corpus), typed whichever is chosen
GROUP_SCHEMAS: dict[tuple[str, str], type] = {
    ("model/quantizer", "vector"): VectorQuantizerOptions,
    ("model/quantizer", "residual"): ResidualQuantizerOptions,
    ("model/quantizer", "hierarchical"): HierarchicalQuantizerOptions,
    ("model/quantizer", "gumbel"): GumbelQuantizerOptions,
    ("corpus", "folder"): FolderCorpusOptions,
    ("corpus", "librispeech"): LibriSpeechCorpusOptions,
    ("corpus", "ljspeech"): LJSpeechCorpusOptions,
    ("corpus", "synthetic"): SyntheticCorpusOptions,
    ("corpus", "vctk"): VCTKCorpusOptions,
    ("corpus", "lhotse"): LhotseCorpusOptions,
    ("corpus", "hf"): HFCorpusOptions,
}


@functools.cache
def register() -> None:
    """Store every schema in Hydra's ConfigStore (once, before the first composition)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=name + SCHEMA_SUFFIX, node=schema)
    for (group, option), schema in GROUP_SCHEMAS.items():
        store.store(name=group_schema_name(group, option), node=schema)


def group_schema_name(group: str, option: str) -> str:
    """The stored name of a group option's schema (``vector_quantizer_schema``), which its YAML
    lists as ``/<name>@_here_``. Stored at the top, not in the group: a group in Hydra's store is
    a group for every command, and ``model=`` is a plain key of the decoding commands."""
    return f"{option}_{group.rpartition('/')[2]}{SCHEMA_SUFFIX}"
