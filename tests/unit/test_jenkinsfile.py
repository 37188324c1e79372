"""The Jenkinsfile's steps call make targets that exist, and every stage has a timeout."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JENKINSFILE = (REPO / "Jenkinsfile").read_text()
SH_STEP = re.compile(
    r"""\bsh\s*(?:\(\s*(?:script:\s*)?)?(?P<quote>'''|\"\"\"|'|")(?P<command>.*?)(?P=quote)""", re.S
)
STAGE = re.compile(r"""\bstage\s*\(\s*['"](?P<name>[^'"]+)['"]\s*\)\s*\{""")
MAKE_TARGET = re.compile(r"^(?P<targets>[A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?!=)", re.M)
COMMAND_SEPARATOR = re.compile(r"&&|\|\||;|\n")


def make_targets() -> set[str]:
    makefile = (REPO / "Makefile").read_text()
    targets = set()
    for found in MAKE_TARGET.finditer(makefile):
        targets.update(found.group("targets").split())
    return targets - {".PHONY"}


def sh_commands() -> list[str]:
    return [found.group("command") for found in SH_STEP.finditer(JENKINSFILE)]


def block_after(text: str, opening_brace: int) -> str:
    """Return the text between the brace at ``opening_brace`` and its matching closing brace."""
    depth = 0
    for position in range(opening_brace, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[opening_brace + 1 : position]
    raise AssertionError(f"unbalanced braces after offset {opening_brace}")


def stages() -> dict[str, str]:
    return {
        found.group("name"): block_after(JENKINSFILE, found.end() - 1)
        for found in STAGE.finditer(JENKINSFILE)
    }


def unknown_commands(command: str, targets: set[str]) -> list[str]:
    """Return the parts of a shell command that run neither a known make target nor a repository file."""
    unknown = []
    for part in COMMAND_SEPARATOR.split(command):
        words = [word for word in shlex.split(part) if "=" not in word or word.startswith("-")]
        if not words:
            continue
        if words[0] == "make":
            named = [word for word in words[1:] if not word.startswith("-")]
            if not named or any(target not in targets for target in named):
                unknown.append(part.strip())
        elif words[0] in ("bash", "sh") and len(words) > 1:
            if not (REPO / words[1]).is_file():
                unknown.append(part.strip())
        elif not (REPO / words[0]).is_file():
            unknown.append(part.strip())
    return unknown


def test_jenkinsfile_sh_steps_call_existing_targets() -> None:
    commands = sh_commands()
    targets = make_targets()
    assert len(commands) >= 6
    for command in commands:
        assert unknown_commands(command, targets) == [], command


def test_jenkinsfile_check_rejects_unknown_target() -> None:
    targets = make_targets()
    assert unknown_commands("make no-such-target", targets) == ["make no-such-target"]
    assert unknown_commands("make lint && curl http://example.invalid", targets) == [
        "curl http://example.invalid"
    ]
    assert unknown_commands('make gate GATE_ARGS="--backend docker"', targets) == []


def test_jenkinsfile_stages_in_order() -> None:
    names = list(stages())
    assert names == [
        "Lint",
        "Unit tests",
        "Build image",
        "Scenario gates: graceful restart (local)",
        "Scenario gates: docker",
        "Scenario gates: kubernetes",
        "Publish",
        "Promote",
    ]


def test_jenkinsfile_every_stage_has_timeout() -> None:
    for name, body in stages().items():
        assert "timeout(" in body, f"stage {name!r} has no timeout"


def test_jenkinsfile_kubernetes_stage_is_off() -> None:
    body = stages()["Scenario gates: kubernetes"]
    assert "when { environment name: 'SLOGATE_KUBERNETES_GATES', value: 'true' }" in body
    assert "SLOGATE_KUBERNETES_GATES = 'false'" in JENKINSFILE


def test_jenkinsfile_promotion_needs_approval() -> None:
    body = stages()["Promote"]
    assert "input message:" in body
    assert "currentBuild.currentResult == 'SUCCESS'" in body


def test_jenkinsfile_publishes_reports_always() -> None:
    post = block_after(JENKINSFILE, JENKINSFILE.index("post {") + len("post "))
    always = block_after(post, post.index("always {") + len("always "))
    assert "publishReports()" in always
    assert "make docker-clean" in always
    assert "publishReports()" in stages()["Publish"]
    for step in (
        "junit ",
        "archiveArtifacts artifacts: 'reports/**'",
        "reportDir: 'reports/latest'",
        "report.html",
    ):
        assert step in JENKINSFILE


def test_jenkinsfile_scenario_paths_exist() -> None:
    paths = re.findall(r"scenarios/[\w.-]+\.yaml", JENKINSFILE)
    assert paths
    for path in paths:
        assert (REPO / path).is_file(), f"the Jenkinsfile names {path}, which does not exist"
