"""The README's two commands: they need only Python, and CI runs the test command exactly as written."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from mnky_profiles.server.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
VENV = "python3 -m venv .venv"


def first_code_block(markdown: str) -> list[str]:
    match = re.search(r"^```[^\n]*\n(.*?)^```", markdown, re.DOTALL | re.MULTILINE)
    assert match, "the README starts its instructions with a fenced code block"
    return [line.strip() for line in match.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


COMMANDS = first_code_block(README)


def steps(command: str) -> list[list[str]]:
    return [shlex.split(step) for step in command.split("&&")]


def test_the_first_code_block_holds_two_commands_that_start_from_python() -> None:
    assert len(COMMANDS) == 2, COMMANDS
    for command in COMMANDS:
        assert command.startswith(VENV + " && "), command
        # Every step is Python or something the fresh virtualenv provides: nothing else to install first.
        for argv in steps(command):
            assert argv[0] == "python3" or argv[0].startswith(".venv/bin/"), command


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = COMMANDS[1]
    assert "pytest" in test_command
    assert test_command in [line.strip() for line in CI.splitlines()]
    # It is a command CI executes, not a comment.
    assert not any(line.strip().startswith("#") and test_command in line for line in CI.splitlines())


def test_the_commands_refer_to_what_exists() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
                 ["optional-dependencies"])
    parser = _parser()
    for command in COMMANDS:
        for argv in steps(command):
            if argv[0] == ".venv/bin/pip":
                targets = [a for a in argv[1:] if a == "." or a.startswith(".[")]
                assert targets, f"{command}: pip installs this checkout"
                for target in targets:
                    named = re.fullmatch(r"\.(?:\[(.+)\])?", target)
                    assert named, target
                    assert set(filter(None, (named.group(1) or "").split(","))) <= extras, target
            elif argv[0] == ".venv/bin/mnky-profiles":
                parser.parse_args(argv[1:])  # exits (fails the test) on an unknown command
