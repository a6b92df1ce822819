"""Evaluation of a trained model: codebook health, phonetic quality, ABX, reconstruction and
conversion metrics, plots, and the report that gathers them (``audio-vq evaluate``)."""


class InsufficientData(ValueError):
    """The inputs are too few for a measure: too few speakers, utterances or labelled frames, no
    alignments. Not a bug: ``audio-vq evaluate`` reports the section that meets it as skipped,
    with this message as its reason."""


def skipped(reason: str) -> dict:
    """A report section that was not computed, in report.json: ``{"skipped": reason}``."""
    return {"skipped": reason}


def skip_reason(section) -> str | None:
    """Why ``section`` (a report.json section) was skipped, or None when it was computed."""
    return section["skipped"] if isinstance(section, dict) and set(section) == {"skipped"} else None
