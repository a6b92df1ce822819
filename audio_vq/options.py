"""Typed options: a dataclass per command (and per component) whose fields are the command's keys,
registered with Hydra's ConfigStore as the schema its YAML preset extends.

    # configs/inference/extract.yaml
    defaults:
      - extract_schema        # ExtractOptions: each key's type and its check
      - _self_
    batch_size: 16            # the preset: the value and the comment `--help` prints

The schema gives every key its type (Hydra refuses a key the schema lacks, and converts or
refuses a value of the wrong type at composition) and its check: a field made with :func:`opt`
carries a :class:`Check`, the one place its range is written, which :func:`validate` applies to
the composed config (config.compose does, and the stage again on what it is handed) with the one-line error
``key=value: expected <what>``. The defaults live in the YAML presets, which say them once with
their comments; a field's Python default is MISSING, so a preset that forgot a key fails.

Migrated so far: prepare, extract, units-convert, reconstruct, convert, synthesize, sample,
evaluate and evaluate-prior; TrainOptions, the training loop's keys, is checked by the trainer
for train and train-prior. The other commands still check their own keys with config.require
inside the stage (DESIGN.md, "Typed options"); export-listening-test checks its decode.yaml keys
against DecodeOptions.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

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


def check_overrides(schema: type, overrides: list[str]) -> None:
    """Each ``key=value`` override of a typed command, checked against its field before Hydra
    composes (Hydra would turn ``yes`` into true and ``abc`` into an error without the key's
    check); keys the schema lacks are left to Hydra's unknown-key error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text_ in overrides:
        override = parser.parse_override(text_)
        found = _field_of(schema, override.key_or_group)
        check = None if found is None else found.metadata.get("check")
        if check is None or override.is_delete():
            continue
        value = override.value()
        if _is_text(found) and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # as the schema stores it: speaker=103 is the name "103"
        if not _passes(check, value):
            raise ConfigError(f"{override.key_or_group}={value!r}: expected {check.expected}")


def _field_of(schema: type, key: str) -> dataclasses.Field | None:
    """The field of dotted ``key`` in ``schema`` (nested dataclasses followed); None if none."""
    head, _, rest = key.partition(".")
    f = {f.name: f for f in dataclasses.fields(schema)}.get(head)
    if f is None or not rest:
        return f
    kind = typing.get_type_hints(schema).get(head)
    return _field_of(kind, rest) if dataclasses.is_dataclass(kind) else None


def covers(schema: type, key: str) -> bool:
    """Whether dotted ``key`` is a field of ``schema`` (so Hydra types it); an untyped group's
    keys (a field of type Any) are not."""
    return _field_of(schema, key) is not None


def _check_of(schema: type, key: str) -> Check | None:
    """The check of dotted ``key`` in ``schema``; None if it has none."""
    f = _field_of(schema, key)
    return None if f is None else f.metadata.get("check")


def _is_text(f: dataclasses.Field) -> bool:
    return f.type in ("str", "Optional[str]", str)


def _passes(check: Check, value: Any) -> bool:
    try:
        return bool(check.ok(value))
    except (TypeError, ValueError):
        return False


def validate(cfg: DictConfig | Any, schema: type | None = None, prefix: str = "") -> None:
    """Apply every field's check of ``schema`` (default: the config's own, a typed command's;
    nested schemas too) to ``cfg``; ConfigError ``key=value: expected ...`` for the first that
    fails. An untyped config is checked against a schema it holds the keys of by naming it."""
    if schema is None:
        schema = OmegaConf.get_type(cfg) if isinstance(cfg, DictConfig) else type(cfg)
    if schema is None or not dataclasses.is_dataclass(schema):
        return
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        value = cfg[f.name]
        if dataclasses.is_dataclass(hints.get(f.name)):
            validate(value, hints[f.name], f"{prefix}{f.name}.")
            continue
        check = f.metadata.get("check")
        if check is not None and not _passes(check, value):
            raise ConfigError(f"{prefix}{f.name}={value!r}: expected {check.expected}")


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


def _labels(v) -> bool:
    return (OmegaConf.is_list(v) or isinstance(v, (list, tuple))) and all(isinstance(x, str) for x in v)


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


def _memory_policies() -> tuple:
    from .memory import POLICIES

    return POLICIES


@dataclass
class TrainOptions:
    """The training loop's keys (configs/train/*.yaml), a component of train and train-prior;
    the trainer checks them under ``train.`` whether the command is typed yet or not."""

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
}


@functools.cache
def register() -> None:
    """Store every schema in Hydra's ConfigStore (once, before the first composition)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=name + SCHEMA_SUFFIX, node=schema)
