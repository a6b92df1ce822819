"""Where writers may write: id names, folder containment, inputs never overwritten, locks, temporaries."""

import os

import pytest

from audio_vq.outputs import (
    OutputError,
    check_not_inputs,
    exclusive,
    inside,
    is_temporary,
    name_problem,
    remove_temporaries,
)


@pytest.mark.parametrize(
    "name",
    ["../x", "/abs/x", "a/b", "a\\b", "a|b", "a\tb", "a\nb", "a\rb", "a\x00b", "..", ".", "", ".hidden", "x" * 201],
)
def test_unsafe_names_are_refused_with_a_reason(name):
    assert name_problem(name) is not None
    with pytest.raises(OutputError, match="refusing to write"):
        inside("/tmp/out", name)


@pytest.mark.parametrize("name", ["p225_001", "b 1", "ç日本", "a.b-c", "x" * 200])
def test_safe_names_pass(name, tmp_path):
    assert name_problem(name) is None
    assert inside(tmp_path, name) == tmp_path / name


def test_check_not_inputs_catches_same_path_symlink_and_hard_link(tmp_path):
    src = tmp_path / "x.wav"
    src.write_bytes(b"RIFF")
    (tmp_path / "link.wav").symlink_to(src)
    os.link(src, tmp_path / "hard.wav")
    for out in (src, tmp_path / "link.wav", tmp_path / "hard.wav", tmp_path / "sub" / ".." / "x.wav"):
        if out.parent.exists():
            with pytest.raises(OutputError, match="output: refusing to write .*: it is the input"):
                check_not_inputs([out], [src], "output")
    check_not_inputs([tmp_path / "new.wav"], [src], "output")  # an output that does not exist yet is fine
    (tmp_path / "other.wav").write_bytes(b"RIFF")
    check_not_inputs([tmp_path / "other.wav"], [src], "output")


def test_exclusive_names_the_holder_and_is_released_when_it_is_killed(tmp_path, hold_lock):
    holder = hold_lock(tmp_path)
    with pytest.raises(OutputError, match=f"run folder X is in use by pid {holder.pid}"):
        with exclusive(tmp_path, "run folder X"):
            pass
    holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
    holder.wait()
    with exclusive(tmp_path, "run folder X") as lock:
        assert lock.read_text().strip() == str(os.getpid())


def test_remove_temporaries_takes_only_the_named_outputs_temporaries(tmp_path):
    names = [".units.txt.tmp-123", ".units.txt.meta.json.ab12.tmp", ".other.txt.tmp-9", "units.txt", ".lock"]
    for n in names:
        (tmp_path / n).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".step_1.pt.zz.tmp").write_text("x")
    removed = remove_temporaries(tmp_path, of=["units.txt"])
    assert sorted(p.name for p in removed) == [".units.txt.meta.json.ab12.tmp", ".units.txt.tmp-123"]
    assert (tmp_path / ".other.txt.tmp-9").exists() and (tmp_path / "sub" / ".step_1.pt.zz.tmp").exists()
    remove_temporaries(tmp_path, recursive=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [".lock", "sub", "units.txt"]
    assert not is_temporary("units.txt") and is_temporary(".a.wav.k3.tmp", ["a.wav"])
