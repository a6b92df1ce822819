"""The house's one-way imports (DESIGN.md, Layout): the library never imports a stage, and a stage
never imports a sibling stage. Read from the source, so lazy imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import audio_vq

PACKAGE = Path(audio_vq.__file__).parent
STAGES = "audio_vq.stages"
ABOVE_STAGES = {"audio_vq.cli", "audio_vq.commands", "audio_vq.api", "audio_vq.sweep"}  # what drives the stages


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every audio_vq module or name ``path`` imports (absolute, with relative ones resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import stages`
    return {m for m in found if m == "audio_vq" or m.startswith("audio_vq.")}


def stage_of(module: str) -> str | None:
    """``audio_vq.stages.evaluate.report`` -> ``audio_vq.stages.evaluate``; None outside stages."""
    parts = module.split(".")
    return ".".join(parts[:3]) if module.startswith(STAGES + ".") and len(parts) > 2 else None


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_the_library_never_imports_a_stage():
    offenders = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        if not m.startswith(STAGES) and m not in ABOVE_STAGES
        for t in targets
        if t == STAGES or t.startswith(STAGES + ".")
    ]
    assert not offenders, offenders


def test_a_stage_never_imports_a_sibling_stage():
    offenders = [
        f"{m} imports {t}"
        for m, targets in graph().items()
        if stage_of(m)
        for t in targets
        if stage_of(t) and stage_of(t) != stage_of(m)
    ]
    assert not offenders, offenders


def test_every_command_runs_a_stage():
    from audio_vq.commands import COMMANDS

    for name, command in COMMANDS.items():
        module = command.run.partition(":")[0]
        assert stage_of(module) or module == "audio_vq.commands", f"{name} runs {module}, outside audio_vq/stages/"


def test_the_graph_reader_sees_relative_and_lazy_imports(tmp_path):
    """The checker itself: a lazy ``from ..stages import decode`` inside a function is found."""
    fake = PACKAGE / "stages" / "_layout_probe.py"
    assert not fake.exists()
    try:
        fake.write_text("def f():\n    from .decode import reconstruct\n    from ..rendering import Renderer\n")
        assert {"audio_vq.stages.decode", "audio_vq.rendering"} <= imports_of(fake)
    finally:
        fake.unlink()
