"""Every ``--flag`` an error message suggests exists on each command that can print it.

Messages are the string constants of ``raise``, ``sys.exit``, ``parser.error`` and
``warnings.warn`` calls in latentrl/, agents/ and experiments/. A message in module M can be
printed by every script in experiments/ that imports M (directly or through other modules of
ours); that script's argparse parser must then define each flag the message names. The
parsers are the scripts' own: ``main()`` runs until ``parse_args``, which is intercepted.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("latentrl", "agents", "envs")
TOKEN = re.compile(r"(?P<script>\b[a-z_*]+)\.py\b|(?P<flag>(?<![\w-])--[a-z][a-z0-9-]*)")

FLAG_OWNERS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    # (module, flag): the scripts whose flag it is, and why the import graph over-reaches.
    **{
        ("agents.pipeline", flag): (
            ("bc_from_video",),
            "run_pipeline and check_fits_task answer bc_from_video.py's command line",
        )
        for flag in ("--flam-run", "--lam-run", "--agents", "--methods", "--planner-episodes")
    },
    ("agents.pipeline", "--wm-expert-share"): (
        ("bc_from_video", "benchmark_agents"),
        "the world-model video of the pipeline is chosen on those two command lines",
    ),
    ("agents.pipeline", "--action-kind"): (
        ("bc_from_video", "benchmark_agents"),
        "the latent-action family of the pipeline is chosen on those two command lines",
    ),
    ("agents.planner", "--action-kind"): (
        ("train_lam",),
        "the planner needs a FLAM run trained with train_lam.py --action-kind fsq",
    ),
    **{
        (module, flag): (("bc_true_actions",), "BC network settings of bc_true_actions.py")
        for module in ("agents.bc", "agents.cells")
        for flag in ("--channels", "--patch")
    },
    **{
        ("latentrl.decoder", flag): (
            ("bc_from_video",),
            "the labelled subset of the decoder is set on bc_from_video.py's command line",
        )
        for flag in ("--label-count", "--label-fraction")
    },
    **{
        ("latentrl.control", flag): (
            ("controllable_generation",),
            "control.py's scene and slot checks answer controllable_generation.py",
        )
        for flag in ("--codes", "--slots", "--episode", "--start", "--steps", "--code-entity")
    },
}


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def script_parser(name: str, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    """``experiments/<name>.py``'s own parser, as its ``main()`` builds it."""

    def intercept(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parsed(self)

    module = importlib.import_module(f"experiments.{name}")
    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", intercept)
        m.setattr(sys, "argv", [f"{name}.py"])
        with pytest.raises(_Parsed) as caught:
            module.main()
    return caught.value.parser


def script_flags(name: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The option strings of ``experiments/<name>.py``'s parser."""
    return set(script_parser(name, monkeypatch)._option_string_actions)


@pytest.mark.parametrize("script", sorted(p.stem for p in (ROOT / "experiments").glob("*.py")))
def test_every_script_prints_its_help(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # argparse %-formats help strings: a stray "%" in a config field's help broke --help once.
    assert "usage:" in script_parser(script, monkeypatch).format_help()


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def sources() -> dict[str, Path]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    files += sorted((ROOT / "experiments").glob("*.py"))
    return {module_name(p): p for p in files}


def imports(path: Path, known: set[str]) -> set[str]:
    """Our modules that ``path`` imports (anywhere in the file, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            # ``import a.b.c`` also runs a and a.b.
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & known
    return found


def _is_message_call(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("exit", "error", "warn")


def message_flags(path: Path) -> set[tuple[str | None, str]]:
    """(script named before it or None, flag) for each flag in the messages of ``path``.

    A flag that follows a script name in the same message ("train_tokenizer.py --frame-size
    64", or a pattern: "train_*.py --data-task") is that script's; any other is the printing
    command's.
    """
    flags = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) or (isinstance(node, ast.Call) and _is_message_call(node)):
            parts = [
                sub.value
                for sub in ast.walk(node)
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str)
            ]
            script = None
            for part in parts:
                for match in TOKEN.finditer(part):
                    if match.group("script"):
                        script = match.group("script")
                    else:
                        flags.add((script, match.group("flag")))
    return flags


def test_flags_in_error_messages_exist_on_the_commands_that_print_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mods = sources()
    graph = {name: imports(path, set(mods)) for name, path in mods.items()}
    scripts = sorted(n for n in mods if n.startswith("experiments."))
    parsers = {s: script_flags(s.split(".", 1)[1], monkeypatch) for s in scripts}
    missing = []
    for script in scripts:
        reach, todo = set(), [script]
        while todo:
            name = todo.pop()
            if name not in reach:
                reach.add(name)
                todo += graph[name]
        for module in sorted(reach):
            for named, flag in sorted(message_flags(mods[module]), key=str):
                # A named script (or pattern: train_*.py) owns the flag; a named file that is
                # none of our scripts leaves it to the printing command.
                owners = fnmatch.filter(parsers, f"experiments.{named}") if named else []
                if (module, flag) in FLAG_OWNERS:
                    owners = [f"experiments.{o}" for o in FLAG_OWNERS[module, flag][0]]
                for owner in owners or [script]:
                    if flag not in parsers[owner]:
                        missing.append(
                            f"{mods[module].relative_to(ROOT)} names {flag}: not on {owner} "
                            f"(printed by {script})"
                        )
    assert not missing, "\n".join(sorted(set(missing)))


def test_the_scan_sees_a_known_message() -> None:
    # The check above is not vacuous: it reads the flag of the frame-size refusal.
    assert ("train_*", "--device") in message_flags(ROOT / "latentrl" / "distributed.py")
    found = message_flags(ROOT / "latentrl" / "stages.py")
    assert ("train_tokenizer", "--frame-size") in found
    assert "latentrl.stages" in imports(ROOT / "experiments" / "train_lam.py", set(sources()))
