"""train.memory's allocator policies, each in a fresh interpreter (they are process-wide)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from audio_vq import memory

THP_SWITCH = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# Allocates and frees 4 blocks of 16 MiB three times; prints the RSS growth and whether torch's
# large blocks are on huge pages.
PROBE = """
import json, sys
from audio_vq import memory
memory.apply(sys.argv[1])
import torch

def rss_mib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024

base = rss_mib()
for _ in range(3):
    blocks = [torch.ones(4 * 2**20) for _ in range(4)]
    del blocks
print(json.dumps({"kept_mib": rss_mib() - base, "huge_pages": memory._huge_pages()}))
"""


def probe(policy: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, policy], capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/proc/self/status").exists(),
    reason="the policies tune glibc on Linux",
)


@linux_glibc
def test_low_returns_freed_blocks_that_the_default_allocator_keeps():
    default, low = probe("default"), probe("low")
    assert default["kept_mib"] > 32  # glibc raised its mmap threshold and kept the blocks
    assert low["kept_mib"] < 16, low


@linux_glibc
@pytest.mark.skipif(
    not THP_SWITCH.exists() or "[never]" in THP_SWITCH.read_text(),
    reason="transparent huge pages are off in this kernel",
)
def test_huge_pages_puts_torch_blocks_on_huge_pages():
    assert probe("huge_pages")["huge_pages"] is True
    assert probe("default")["huge_pages"] is False


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="memory policy 'fast'"):
        memory.apply("fast")


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.quantizer.codebook_size=4000000000", "model.quantizer.codebook_size"),
        ("model.decoder.residual_channels=2000000", "model.decoder.residual_channels"),
        ("model.encoder.channels=3000000", "model.encoder.channels"),
        ("model.decoder.skip_channels=3000000", "model.decoder.skip_channels"),
    ],
)
def test_check_fits_refuses_naming_the_key_behind_the_largest_tensor(override, key):
    # Catches a refusal that names the wrong key (or none), and an estimate that allocates.
    from omegaconf import OmegaConf

    from audio_vq.config import ConfigError, compose
    from audio_vq.stages import train

    cfg = compose("train", [override])
    with pytest.raises(ConfigError, match=rf"^{key}=\d+: the model needs [\d.e+]+ GiB .* of memory available$"):
        memory.check_fits(lambda: train._build_model(cfg, 1), {"model": OmegaConf.to_container(cfg.model)}, "cpu")
    model = memory.check_fits(lambda: train._build_model(compose("train", []), 1), {"model": {}}, "cpu")
    assert model.hop == 320 and next(model.parameters()).is_meta  # what fits comes back as shapes only


def test_check_fits_of_a_prior_names_its_key():
    from audio_vq.config import ConfigError
    from audio_vq.models.prior import UnitPrior

    args = {"codebook_size": 100, "dim": 4000000, "layers": 2, "heads": 4, "max_len": 64, "num_speakers": 2}
    with pytest.raises(ConfigError, match=r"^prior.dim=4000000: "):
        memory.check_fits(
            lambda: UnitPrior(**args),
            {"prior": {k: v for k, v in args.items() if k != "codebook_size"}, "codebook_size": 100},
            "cpu",
        )
