"""The kinds table is the only list of listening-test kinds: every module that names, builds or
reads a kind takes it from kinds.KINDS, so a kind added there (or a module's own copy that lost
one) shows here."""

import dataclasses

import pytest

from audio_vq.config import ConfigError, compose
from audio_vq.stages.listening import answers, beaqle, results, webmushra
from audio_vq.stages.listening.analysis import ANALYSES
from audio_vq.stages.listening.key import CONDITION, REFERENCE, KeyRow
from audio_vq.stages.listening.kinds import KINDS, MOS
from audio_vq.stages.listening.options import check_options

INFERENCE = "audio_vq.configs.inference"
EACH = pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))


def test_the_table_keeps_the_config_names_in_their_order():
    assert list(KINDS) == ["mushra", "ab", "abx", "mos"]
    assert all(kind.name == name for name, kind in KINDS.items())


EXPORT = ("export_listening_test", ["model=m", "data=d", "out=o"], check_options)
RESULTS = ("listening_results", ["results=r", "key=k"], results)


def run(command, kind):
    config, overrides, check = command
    return check(compose(config, [*overrides, f"kind={kind}"], package=INFERENCE))


def test_both_commands_accept_exactly_the_kinds_of_the_table(monkeypatch):
    """A kind added to the table is one the export and the results accept and list: a module
    with its own list of names would not know it."""
    monkeypatch.setitem(KINDS, "fake", dataclasses.replace(MOS, name="fake"))
    for command, expected in ((EXPORT, " | ".join(KINDS)), (RESULTS, "auto | " + " | ".join(KINDS))):
        with pytest.raises(ConfigError, match="kind='nope'") as e:
            run(command, "nope")
        assert str(e.value).endswith(f"expected {expected}")
    assert [run(EXPORT, name).kind for name in KINDS] == list(KINDS.values())
    with pytest.raises(ConfigError, match="key=k: no such file"):  # past the kind check
        run(RESULTS, "fake")


def test_every_kind_is_analysed():
    assert list(ANALYSES) == list(KINDS.values())


@EACH
def test_every_kind_is_a_webmushra_page_the_export_builds_and_the_results_read(kind):
    assert kind.page_type in webmushra.WEBMUSHRA_PAGE_TYPES
    assert kind.page_type in webmushra.PAGE_FIELDS and kind.page_type in answers.PAGE_COLUMNS
    rows = [
        KeyRow("stimuli/t1_r.wav", "t1", "t1_r", REFERENCE, "reference", "u", "s"),
        KeyRow("stimuli/t1_a.wav", "t1", "t1_a", CONDITION, "reconstruction", "u", "s", "s"),
        KeyRow("stimuli/t1_b.wav", "t1", "t1_b", CONDITION, "conversion", "u", "s", "t"),
    ]
    config = webmushra.build_config(kind, webmushra.group_trials(rows), "p", "name", "id", True)
    pages = list(webmushra._walk_pages(config["pages"]))[1:-1]
    assert pages and all(p["type"] == kind.page_type and p["name"] == kind.title for p in pages)
    assert config["pages"][0]["content"] == kind.instructions


@EACH
def test_every_kind_beaqlejs_runs_has_a_class_it_builds_and_reads(kind):
    assert beaqle.supported(kind) == (kind.beaqle_class is not None)
    if beaqle.supported(kind):
        assert kind.beaqle_class in beaqle.TEST_SETS and kind.beaqle_class in answers.BEAQLE_ROWS
