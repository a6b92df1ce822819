"""The webMUSHRA checker on small hand-made configs: it passes good ones and names each problem."""

import numpy as np
import soundfile as sf

from audio_vq.stages.listening.webmushra import MUSHRA_MAX_SECONDS, MUSHRA_MAX_STIMULI, check_config


def wav(folder, name, seconds=0.1, rate=16000, channels=1):
    x = np.zeros((int(seconds * rate), channels), np.float32)
    sf.write(folder / name, x, rate)
    return name


def config(page):
    return {
        "testname": "t",
        "testId": "t",
        "bufferSize": 2048,
        "stopOnErrors": True,
        "remoteService": "s",
        "pages": [["random", page], {"type": "finish", "name": "bye"}],
    }


def mushra(folder, n, **kw):
    return {
        "type": "mushra",
        "id": "t1",
        "reference": f"p/{wav(folder, 'ref.wav', **kw)}",
        "stimuli": {f"c{i}": f"p/{wav(folder, f'c{i}.wav', **kw)}" for i in range(n)},
    }


def test_a_good_mushra_page_passes(tmp_path):
    assert check_config(config(mushra(tmp_path, MUSHRA_MAX_STIMULI - 1)), tmp_path, "p") == []


def test_each_of_webmushras_checks_can_fail(tmp_path):
    page = mushra(tmp_path, MUSHRA_MAX_STIMULI)  # 12 + the hidden reference
    assert any("strict allows at most 12" in p for p in check_config(config(page), tmp_path, "p"))
    assert check_config(config({**page, "strict": False}), tmp_path, "p") == []
    long = mushra(tmp_path, 2, seconds=MUSHRA_MAX_SECONDS + 0.5)
    assert any("longer than 12 s" in p for p in check_config(config(long), tmp_path, "p"))
    page = mushra(tmp_path, 2)
    wav(tmp_path, "c1.wav", rate=8000, seconds=0.2)
    wav(tmp_path, "c0.wav", channels=2)
    problems = " ".join(check_config(config(page), tmp_path, "p"))
    assert "different sample rates" in problems and "different channel counts" in problems
    page["stimuli"]["gone"] = "p/gone.wav"
    assert any("gone.wav not found" in p for p in check_config(config(page), tmp_path, "p"))
    no_finish = config(mushra(tmp_path, 2))
    no_finish["pages"].pop()
    assert any("finish" in p for p in check_config(no_finish, tmp_path, "p"))
    bad = {**config(mushra(tmp_path, 2)), "bufferSize": 1000}
    assert any("bufferSize" in p for p in check_config(bad, tmp_path, "p"))


TRICKY = {
    "testname": 'Tëst "quoted" # not a comment: colon',
    "testId": "007",
    "bufferSize": 2048,
    "flags": [True, False, None],
    "ratio": 1e-05,
    "neg": -23.0,
    "yes": "no",
    "1": "one",
    "empty": [],
    "none": {},
    "pages": [
        {"type": "generic", "content": "line1\nline2\ttab"},
        [
            "random",
            {"type": "mushra", "id": "t01", "stimuli": {"t01_5f2a1": "a/b.wav", "0x1F": "c.wav"}},
            [{"type": "likert_single_stimulus", "response": [{"value": 1, "label": "Bad"}]}],
        ],
        {"type": "finish", "questionnaire": [{"type": "text", "name": "listener", "label": "Id:"}]},
    ],
}


def test_dump_yaml_reads_the_same_in_webmushras_parser_and_pyyaml(yamljs):
    import yaml

    from audio_vq.stages.listening.webmushra import dump_yaml

    text = dump_yaml(TRICKY)
    assert yaml.safe_load(text) == TRICKY
    assert yamljs(text) == TRICKY
    # the check is able to fail: PyYAML's own compact nested lists are what yamljs misreads
    compact = yaml.safe_dump(TRICKY, sort_keys=False, allow_unicode=True, width=1000)
    assert "- - random" in compact and yamljs(compact) != TRICKY
