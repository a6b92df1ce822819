"""Training: a short run's outputs, exact resume, damaged checkpoints, non-finite losses,
torchrun DDP, and config errors that stop before training."""

import csv
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from audio_vq import trainer
from audio_vq.checkpoint import load_model, model_checksum
from audio_vq.config import ConfigError, compose, compose_run
from audio_vq.manifest import read_manifest
from audio_vq.models.vqvae import VQVAE
from audio_vq.stages import prepare, train

TINY = [
    "model.decoder.pitch=none",
    "model.encoder.channels=16",
    "model.encoder.strides=[2,2,2,2,2,2]",
    "model.quantizer.dim=8",
    "model.quantizer.codebook_size=16",
    "model.decoder.stacks=1",
    "model.decoder.layers_per_stack=4",
    "model.decoder.residual_channels=16",
    "model.decoder.gate_channels=32",
    "model.decoder.skip_channels=32",
    "model.decoder.speaker_dim=4",
    "data.crop_seconds=0.128",
    "train.batch_size=4",
    "train.warmup_steps=2",
    "train.lr=3e-3",
    "train.log_every=2",
    "train.valid_batches=1",
    "train.threads=1",
]  # fixed threads: bit-exact resume
SCRIPT = Path(sys.executable).with_name("audio-vq")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    prepare.run(
        compose(
            "prepare",
            [
                "corpus=synthetic",
                f"root={root / 'synthetic'}",
                f"out={root / 'data'}",
                "corpus.minutes=1.0",
                "num_workers=0",
                "split.valid=0.2",
                "split.test=0",
            ],
        )
    )
    return root / "data" / "manifest.jsonl"


def config(manifest, run_dir, *overrides):
    cfg, folder = compose_run("train", [f"data.manifest={manifest}", f"hydra.run.dir={run_dir}", *TINY, *overrides])
    return cfg, folder


def weights(run_dir):
    return load_file(str(Path(run_dir) / "model" / "model.safetensors"))


def test_a_short_run_leaves_model_dir_events_and_metrics(manifest, tmp_path):
    cfg, folder = config(
        manifest,
        tmp_path / "run",
        "train.max_steps=20",
        "train.valid_every=10",
        "train.checkpoint_every=10",
        "train.audio_every=10",
        "data.num_workers=0",
    )
    run_dir = train.run(cfg, folder)
    assert sorted(p.name for p in (run_dir / "model").iterdir()) == [
        "checksum.sha256",
        "config.yaml",
        "model.safetensors",
        "speakers.json",
    ]
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0]), size_guidance={"audio": 0}).Reload()
    assert {"valid/original", "valid/generated"} <= set(acc.Tags()["audio"])
    generated = acc.Audio("valid/generated")
    assert [a.step for a in generated] == [10, 20] and generated[0].length_frames == 2048
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000010.pt", "step_00000020.pt"]
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["step"]) for r in rows if r["split"] == "train"] == list(range(2, 21, 2))
    assert [int(r["step"]) for r in rows if r["split"] == "valid"] == [10, 20]
    assert all(float(r["audio_s_per_s"]) > 0 for r in rows if r["split"] == "train")
    assert len(model_checksum(run_dir / "model")) == 64

    # load_model gives the trained model: the same outputs as the final training state's weights
    loaded = load_model(run_dir / "model")
    assert not loaded.training and loaded.speaker_index == {f"spk{i:02d}": i for i in range(8)}
    assert loaded.config["model"]["quantizer"]["codebook_size"] == 16
    state = torch.load(run_dir / "checkpoints" / "step_00000020.pt", weights_only=True)
    trained = VQVAE.from_config(loaded.config["model"], 8)
    trained.load_state_dict(state["model"])
    trained.eval()
    x = torch.randn(2, 2048) * 0.1
    assert torch.equal(loaded.encode(x), trained.encode(x))
    z = loaded.latents(loaded.encode(x))
    torch.testing.assert_close(
        loaded.decoder_logits(x, z, torch.tensor([0, 5])),
        trained.decoder_logits(x, z, torch.tensor([0, 5])),
        rtol=0,
        atol=0,
    )


def test_resume_after_a_kill_reaches_the_weights_of_an_uninterrupted_run(manifest, tmp_path):
    common = [
        "train.max_steps=20",
        "train.checkpoint_every=5",
        "train.valid_every=100",
        "data.num_workers=2",
        "model.decoder.output=categorical",
        "model.jitter=0.12",
    ]
    cfg, folder = config(manifest, tmp_path / "straight", *common)
    train.run(cfg, folder)
    cfg, folder = config(manifest, tmp_path / "killed", *common)
    train.run(cfg, folder, stop_at_step=12)  # killed after step 12: steps 11-12 are lost
    assert (tmp_path / "killed" / "checkpoints" / "step_00000010.pt").exists()
    cfg, folder = config(manifest, tmp_path / "killed", *common, "train.resume=true")
    train.run(cfg, folder)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # each step is in metrics.csv once: the rows of the lost steps were replaced
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "killed" / "metrics.csv")) if r["split"] == "train"]
    assert steps == list(range(2, 21, 2))


def test_activation_checkpointing_trains_to_the_same_weights(manifest, tmp_path, monkeypatch):
    from audio_vq.models import wavenet

    calls = []

    def counted(*args, **kwargs):  # the real torch checkpoint, counted
        calls.append(1)
        return torch.utils.checkpoint.checkpoint(*args, **kwargs)

    monkeypatch.setattr(wavenet, "checkpoint", counted)
    common = ["train.max_steps=4", "train.checkpoint_every=4", "train.valid_every=100", "data.num_workers=0"]
    for name, flag in [("plain", "false"), ("recomputed", "true")]:
        cfg, folder = config(manifest, tmp_path / name, *common, f"train.activation_checkpointing={flag}")
        train.run(cfg, folder)
        assert bool(calls) == (flag == "true")
    assert len(calls) == 4  # one stack (TINY), one forward per step
    a, b = weights(tmp_path / "plain"), weights(tmp_path / "recomputed")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous(manifest, tmp_path, caplog):
    cfg, folder = config(
        manifest, tmp_path / "run", "train.max_steps=10", "train.checkpoint_every=5", "data.num_workers=0"
    )
    train.run(cfg, folder)
    latest = tmp_path / "run" / "checkpoints" / "step_00000010.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 3])
    cfg, folder = config(
        manifest,
        tmp_path / "run",
        "train.max_steps=12",
        "train.checkpoint_every=5",
        "data.num_workers=0",
        "train.resume=true",
    )
    with caplog.at_level(logging.WARNING, logger="audio_vq"):
        train.run(cfg, folder)
    assert any("step_00000010.pt is unreadable" in r.message for r in caplog.records)
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_00000012.pt", weights_only=True)
    assert state["step"] == 12 and state["batches_seen"] == 12  # 5 from the old checkpoint + 7


def test_non_finite_losses_skip_steps_then_stop_with_the_last_checkpoint_intact(manifest, tmp_path, monkeypatch):
    cfg, folder = config(
        manifest,
        tmp_path / "run",
        "train.max_steps=30",
        "train.checkpoint_every=4",
        "train.max_nonfinite=3",
        "data.num_workers=0",
    )
    real_forward = VQVAE.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] in (3,) or calls["n"] >= 7:  # one isolated bad batch, then a run of them
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(VQVAE, "forward", poisoned)
    with pytest.raises(train.TrainingError, match="3 non-finite losses in a row"):
        train.run(cfg, folder)
    state = torch.load(tmp_path / "run" / "checkpoints" / "step_00000004.pt", weights_only=True)
    assert state["step"] == 4 and state["nonfinite_total"] == 1 and state["batches_seen"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.lr=-0.1", "train.lr"),
        ("data.crop_seconds=0.001", "data.crop_seconds"),
        ("train.precision=fp8", "train.precision"),
        ("model.decoder.gate_channels=33", "model"),
        ("train.threads=0", "train.threads"),
        ("data.num_workers=many", "data.num_workers"),
        ("model.input_dropout=1.5", "model"),
        ("train.compile_backend=tvm", "train.compile_backend"),
        ("train.memory=fast", "train.memory"),
    ],
)
def test_bad_values_fail_before_training(manifest, tmp_path, override, key):
    with pytest.raises(ConfigError) as err:  # at composition (a typed key's check) or in the stage (the model's)
        train.run(*config(manifest, tmp_path / "run", override))
    assert str(err.value).startswith(key)
    assert not (tmp_path / "run").exists()


def test_cli_errors_name_the_key(tmp_path):
    cases = [
        (["model=huge"], "model=huge"),
        ([f"data.manifest={tmp_path / 'nope'}"], "data.manifest"),
        (["train.batch_size=0", f"data.manifest={tmp_path}"], "train.batch_size"),
    ]
    for args, word in cases:
        r = subprocess.run(
            [str(SCRIPT), "train", f"hydra.run.dir={tmp_path / 'run'}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize(
    "quantizer",
    [
        [],
        [  # residual levels, each rank drawing its own dropped levels
            "model/quantizer=residual",
            "model.quantizer.num_quantizers=3",
            "model.quantizer.quantizer_dropout=1.0",
            "model.quantizer.restart_after=2",
        ],
        [  # the hierarchy: a top encoder and two synchronised codebooks
            "model/quantizer=hierarchical",
            "model.quantizer.top_strides=[2,2]",
            "model.quantizer.top_channels=8",
            "model.quantizer.restart_after=2",
        ],
        [  # a pitch model: each rank tracks half the contours, both read all
            "model.decoder.pitch=excitation",
            "model.decoder.harmonics=2",
            "data.pitch_tracker=dio",
        ],
    ],
    ids=["vector", "residual", "hierarchical", "pitch"],
)
def test_torchrun_two_gloo_processes_end_with_identical_weights(manifest, tmp_path, quantizer):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "audio_vq.cli",
            "train",
            f"data.manifest={manifest}",
            f"hydra.run.dir={tmp_path / 'ddp'}",
            *TINY,
            "train.max_steps=6",
            "train.checkpoint_every=3",
            "data.num_workers=0",
            "device=cpu",
            *quantizer,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "weights identical on all 2 ranks" in (tmp_path / "ddp" / "train.log").read_text()
    state = torch.load(tmp_path / "ddp" / "checkpoints" / "step_00000006.pt", weights_only=True)
    assert len(state["rng"]) == 2 and state["batches_seen"] == 6
    if "data.pitch_tracker=dio" in quantizer:
        # Catches: every rank tracking every contour (rank 0's bar would count them all) and a
        # rank training on contours the other has not written yet (it would fail to read them)
        used = [u for u in read_manifest(manifest) if u.split in ("train", "valid")]
        totals = {int(t) for t in re.findall(r"F0 \(dio\):\s+\d+%\|[^|]*\| \d+/(\d+)", r.stderr)}
        assert totals == {(len(used) + 1) // 2}, (totals, len(used))
        assert len(list((tmp_path / "ddp" / "pitch").glob("*/*.f0"))) == len(used)


def test_a_time_budget_gives_the_progress_bar_an_estimated_total():
    from omegaconf import OmegaConf

    tc = OmegaConf.create({"max_steps": 1000, "max_minutes": 1.0})
    assert trainer._budget_total(tc, 10, 10, 6.0) == 100  # 10 steps took 6 s: 54 s left -> 90 more
    assert trainer._budget_total(tc, 30, 10, 6.0) == 120  # resumed at 20: only this run's steps set the rate
    assert trainer._budget_total(tc, 0, 0, 0.0) == 1000
    assert trainer._budget_total(OmegaConf.create({"max_steps": 50, "max_minutes": 1.0}), 10, 10, 6.0) == 50


def test_adversary_and_thread_columns_reach_metrics_csv(manifest, tmp_path):
    cfg, folder = config(
        manifest,
        tmp_path / "run",
        "train.max_steps=4",
        "train.valid_every=100",
        "data.num_workers=0",
        "model.adversary.weight=0.5",
        "train.threads=auto",
    )
    train.run(cfg, folder)
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv")) if r["split"] == "train"]
    assert len(rows) == 2
    for r in rows:
        assert float(r["adversary_loss"]) > 0 and 0 <= float(r["adversary_accuracy"]) <= 1
        assert float(r["threads"]) >= 1 and float(r["grad_norm"]) > 0
        assert float(r["quantizer_loss"]) >= 0 and r["diversity_loss"] != ""  # every metric of the model


def test_a_gumbel_run_logs_its_diversity_loss(manifest, tmp_path):
    cfg, folder = config(
        manifest,
        tmp_path / "run",
        "train.max_steps=2",
        "train.log_every=1",
        "train.valid_every=100",
        "data.num_workers=0",
        "model/quantizer=gumbel",
        "model.quantizer.dim=8",
        "model.quantizer.codebook_size=16",
    )
    train.run(cfg, folder)
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv")) if r["split"] == "train"]
    assert len(rows) == 2 and all(float(r["diversity_loss"]) > 0 for r in rows)


# ------------------------------------------------------------------------------------------
# Run folders are owned: no mixing with another run, one trainer at a time, honest resumes


def test_a_fresh_run_refuses_a_folder_holding_a_trained_run_or_other_files(manifest, tmp_path):
    cfg, folder = config(
        manifest, tmp_path / "run", "train.max_steps=4", "train.checkpoint_every=2", "data.num_workers=0"
    )
    train.run(cfg, folder)
    before = sorted((tmp_path / "run" / "checkpoints").iterdir())
    cfg, folder = config(manifest, tmp_path / "run", "train.max_steps=2", "data.num_workers=0")
    with pytest.raises(
        ConfigError, match=r"hydra.run.dir=.*run: holds a trained run; continue it with train.resume=true"
    ):
        train.run(cfg, folder)
    assert sorted((tmp_path / "run" / "checkpoints").iterdir()) == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    cfg, folder = config(manifest, tmp_path / "mine", "train.max_steps=2", "data.num_workers=0")
    with pytest.raises(ConfigError, match=r"not a run folder \(it holds notes.txt\)"):
        train.run(cfg, folder)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_second_trainer_into_a_busy_run_folder_is_refused(manifest, tmp_path, hold_lock):
    run_dir = tmp_path / "run"
    holder = hold_lock(run_dir)
    cfg, folder = config(manifest, run_dir, "train.max_steps=2", "data.num_workers=0")
    with pytest.raises(ValueError, match=f"run folder .*run is in use by pid {holder.pid}"):
        train.run(cfg, folder)
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing of the refused run


def test_resume_refuses_changed_training_settings_applies_budgets_and_cleans_temporaries(manifest, tmp_path, caplog):
    common = ["train.checkpoint_every=2", "data.num_workers=0"]
    cfg, folder = config(manifest, tmp_path / "run", "train.max_steps=4", *common)
    train.run(cfg, folder)
    for override, key in [
        ("train.lr=0.1", "train.lr"),
        ("model.quantizer.codebook_size=32", "model.quantizer.codebook_size"),
        ("model=paper", "model."),
    ]:
        cfg, folder = config(manifest, tmp_path / "run", "train.max_steps=6", "train.resume=true", *common, override)
        with pytest.raises(ConfigError, match=rf"train.resume=true: the run was trained with {key}"):
            train.run(cfg, folder)
    assert not (tmp_path / "run" / "checkpoints" / "step_00000006.pt").exists()
    stale = [
        tmp_path / "run" / ".config.yaml.k2j4.tmp",
        tmp_path / "run" / "checkpoints" / ".step_00000006.pt.x1.tmp",
        tmp_path / "run" / "model" / ".model.safetensors.q9.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half")
    cfg, folder = config(manifest, tmp_path / "run", "train.max_steps=6", "train.resume=true", *common)
    with caplog.at_level(logging.INFO, logger="audio_vq"):
        train.run(cfg, folder)
    assert any("resume: train.max_steps 4 -> 6" in r.message for r in caplog.records)
    assert torch.load(tmp_path / "run" / "checkpoints" / "step_00000006.pt", weights_only=True)["step"] == 6
    assert not any(p.exists() for p in stale)
    assert "max_steps: 6" in (tmp_path / "run" / "config.yaml").read_text()
    # a run from before the pitch and aux_mel keys (its config.yaml lacks them) resumes at their
    # old-behaviour values, and refuses a pitch model
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    del saved["model"]["decoder"]["pitch"], saved["model"]["decoder"]["harmonics"], saved["model"]["aux_mel"]
    del saved["data"]["pitch_tracker"]
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved))
    cfg, folder = config(
        manifest, tmp_path / "run", "train.max_steps=7", "train.resume=true", *common, "model.decoder.pitch=excitation"
    )
    with pytest.raises(ConfigError, match=r"trained with model.decoder.pitch=none \(now excitation\)"):
        train.run(cfg, folder)
    cfg, folder = config(manifest, tmp_path / "run", "train.max_steps=7", "train.resume=true", *common)
    train.run(cfg, folder)
    assert torch.load(tmp_path / "run" / "checkpoints" / "step_00000007.pt", weights_only=True)["step"] == 7


def test_cli_validation_gaps_are_one_line_errors(manifest, tmp_path):
    cases = [
        (["train.lr=inf"], "train.lr=inf: expected a finite number"),
        (["model.quantizer.codebook_size=abc"], "model.quantizer.codebook_size='abc': expected a finite number"),
        (["hydra.run.dir="], "hydra.run.dir='': expected a run folder"),
        (["=1"], "'=1': expected key=value"),
    ]
    for args, message in cases:
        r = subprocess.run(
            [str(SCRIPT), "train", f"data.manifest={manifest}", f"hydra.run.dir={tmp_path / 'run'}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was trained into the cwd or anywhere


def lr_column(run_dir) -> dict[int, float]:
    return {
        int(r["step"]): float(r["lr"])
        for r in csv.DictReader(open(Path(run_dir) / "metrics.csv"))
        if r["split"] == "train"
    }


def test_a_longer_budget_on_resume_keeps_the_schedules_horizon_unless_stretched(manifest, tmp_path, caplog):
    # Catches the cosine schedule's length read from train.max_steps at each start: a resume
    # 4 -> 8 steps moved the lr from the floor back up the curve (0.1 -> ~0.6 x lr).
    common = ["train.lr_schedule=cosine", "train.log_every=1", "train.checkpoint_every=2", "data.num_workers=0"]
    cfg, folder = config(manifest, tmp_path / "straight", "train.max_steps=8", *common)
    train.run(cfg, folder)
    straight = lr_column(tmp_path / "straight")
    for name in ("kept", "stretched"):
        cfg, folder = config(manifest, tmp_path / name, "train.max_steps=4", *common)
        train.run(cfg, folder)
    floor = 3e-3 * 0.1  # TINY's lr x min_lr_ratio
    cfg, folder = config(manifest, tmp_path / "kept", "train.max_steps=8", "train.resume=true", *common)
    with caplog.at_level(logging.INFO, logger="audio_vq"):
        train.run(cfg, folder)
    kept = lr_column(tmp_path / "kept")
    assert kept[4] == pytest.approx(floor)  # the 4-step schedule had reached its floor
    assert [kept[s] for s in range(5, 9)] == pytest.approx([floor] * 4)
    assert any("the cosine schedule ends at step 4" in r.message for r in caplog.records)
    assert torch.load(tmp_path / "kept" / "checkpoints" / "step_00000008.pt", weights_only=True)["schedule_steps"] == 4

    caplog.clear()  # train.schedule_steps=8 stretches it: from step 5 on, the 8-step run's lr
    cfg, folder = config(
        manifest, tmp_path / "stretched", "train.max_steps=8", "train.schedule_steps=8", "train.resume=true", *common
    )
    with caplog.at_level(logging.INFO, logger="audio_vq"):
        train.run(cfg, folder)
    stretched = lr_column(tmp_path / "stretched")
    assert [stretched[s] for s in range(5, 9)] == pytest.approx([straight[s] for s in range(5, 9)])
    assert stretched[5] > 2 * floor
    assert any("moves the learning rate from" in r.message for r in caplog.records)


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, seconds: float = 300) -> None:
    """Until metrics.csv has a train row at ``step`` or later (the run is in its loop)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if (run_dir / "metrics.csv").exists() and any(
            r["split"] == "train" and int(r["step"]) >= step for r in csv.DictReader(open(run_dir / "metrics.csv"))
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"the run never reached step {step}: {process.poll()=}")


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1"])
def test_a_preemption_signal_checkpoints_the_step_and_exits_75_then_resumes(manifest, tmp_path, signal_name):
    # Catches: SIGTERM / SIGUSR1 ending the run with no checkpoint (steps since the last periodic
    # one lost), data-loader workers dying of the signal SLURM sends to the whole process group,
    # and an exit status that does not say the run was preempted.
    import signal

    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [
            str(SCRIPT),
            "train",
            f"data.manifest={manifest}",
            f"hydra.run.dir={run_dir}",
            *TINY,
            "train.max_steps=100000",
            "train.checkpoint_every=1000",
            "train.log_every=1",
            "data.num_workers=2",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )  # its own process group: the signal reaches the workers too
    try:
        wait_for_step(run_dir, 3, process)
        os.killpg(process.pid, getattr(signal, signal_name))
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 75, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    found = re.search(rf"audio-vq train: preempted by {signal_name} at step (\d+): .*train.resume=true", last)
    assert found, last
    step = int(found.group(1))
    assert step >= 3
    saved = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert saved == [f"step_{step:08d}.pt"]
    assert (run_dir / "model" / "checksum.sha256").exists()
    cfg, folder = config(
        manifest,
        run_dir,
        f"train.max_steps={step + 2}",
        "train.checkpoint_every=1000",
        "train.log_every=1",
        "data.num_workers=0",
        "train.resume=true",
    )
    train.run(cfg, folder)
    state = torch.load(run_dir / "checkpoints" / f"step_{step + 2:08d}.pt", weights_only=True)
    assert state["step"] == step + 2 and state["batches_seen"] == step + 2


def test_a_model_too_big_for_memory_is_refused_naming_its_key(manifest, tmp_path):
    # Catches building the model before estimating it: the allocator's traceback after minutes,
    # or the machine swapping.
    r = subprocess.run(
        [
            str(SCRIPT),
            "train",
            f"data.manifest={manifest}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "model.quantizer.codebook_size=4000000000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("audio-vq train: error: model.quantizer.codebook_size=4000000000: the model needs ")
    assert "GiB of memory available" in r.stderr
    assert not (tmp_path / "run").exists()


def test_running_out_of_memory_at_run_time_is_one_line(manifest, tmp_path):
    # Catches an allocation failure escaping as a traceback. The estimate passes (the model is
    # tiny); the address-space limit makes the first step's activations fail for real.
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            str(SCRIPT),
            "train",
            f"data.manifest={manifest}",
            f"hydra.run.dir={tmp_path / 'run'}",
            *TINY,
            "data.crop_seconds=60",
            "train.batch_size=16",
            "data.num_workers=0",
            "train.max_steps=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
        env=env,
    )
    assert r.returncode == 1, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("audio-vq train: error: out of memory (") and "Traceback" not in r.stderr, r.stderr[-2000:]


def rank_pid(agent: int, rank: int) -> int:
    """The pid of torchrun's worker of ``rank`` (a child of the agent with RANK=<rank>)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = int(next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("PPid:")))
            environ = (status.parent / "environ").read_bytes().split(b"\0")
        except (OSError, StopIteration):
            continue
        if ppid == agent and f"RANK={rank}".encode() in environ:
            return int(status.parent.name)
    raise AssertionError(f"no rank {rank} under torchrun's agent {agent}")


def test_a_preempted_torchrun_job_stops_every_rank_at_the_same_checkpointed_step(manifest, tmp_path):
    # Catches a torchrun job that dies of the signal (no checkpoint), or whose ranks stop at
    # different steps. Only rank 1 is signalled; both must stop at one step, whose checkpoint
    # holds both RNG states. (torchrun's agent also terminates rank 0 once rank 1 exits, so this
    # does not tell the ranks' agreement from that; the agreement is ctx.any_each in the loop.)
    import signal

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    run_dir = tmp_path / "ddp"
    process = subprocess.Popen(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "audio_vq.cli",
            "train",
            f"data.manifest={manifest}",
            f"hydra.run.dir={run_dir}",
            *TINY,
            "train.log_every=1",
            "train.max_steps=100000",
            "train.checkpoint_every=1000",
            "data.num_workers=1",
            "device=cpu",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        wait_for_step(run_dir, 3, process)
        os.kill(rank_pid(process.pid, 1), signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    steps = re.findall(r"audio-vq train: preempted(?: by SIGTERM)? at step (\d+):", stderr)
    assert len(steps) == 2 and steps[0] == steps[1], stderr[-3000:]
    state = torch.load(run_dir / "checkpoints" / f"step_{int(steps[0]):08d}.pt", weights_only=True)
    assert state["step"] == int(steps[0]) and len(state["rng"]) == 2


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_of(monkeypatch, caplog, native):
    # Catches: bf16 chosen silently on a CPU that emulates it (a step there took 6x the fp32 one,
    # benchmarks/RESULTS.md), and a warning on CPUs where bf16 is the faster choice.
    import logging

    import torch

    from audio_vq import trainer

    monkeypatch.setattr(trainer, "cpu_has_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="audio_vq.trainer"):
        assert trainer._precision("bf16", torch.device("cpu")) == torch.bfloat16
        assert trainer._precision("fp32", torch.device("cpu")) == torch.float32
    warned = [r.getMessage() for r in caplog.records if "bf16" in r.getMessage()]
    assert len(warned) == (0 if native else 1), warned
