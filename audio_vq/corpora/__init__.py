"""Corpus scanners: one module per dataset layout, each turning a root folder into utterances.

Every module exposes ``scan(root, **options) -> Iterator[Utterance]``: ids, paths (absolute),
speakers and whatever text, alignment and split hints the layout carries. Scanners do not
decode audio: `prepare` validates every file and reports the ones it cannot use. A root that is
not in the expected layout raises :class:`CorpusError`. Options are the keys of
``configs/corpus/<name>.yaml`` (the config mirrors the function's arguments).
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterator

from ..manifest import Utterance
from .common import CorpusError

CORPORA = ("vctk", "librispeech", "ljspeech", "folder", "synthetic", "lhotse", "hf")

Scanner = Callable[..., Iterator[Utterance]]


def get_scanner(name: str) -> Scanner:
    """The ``scan`` function of corpus ``name``."""
    if name not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}")
    return importlib.import_module(f"{__name__}.{name}").scan


__all__ = ["CORPORA", "CorpusError", "Scanner", "get_scanner"]
