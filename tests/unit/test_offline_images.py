"""Inputs, tags and apt sources of the offline image build, and the image's runtime requirements."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from harness.stack.docker import require_current_gateway
from harness.stack.errors import StackError
from harness.stack.images import (
    MISSING_DISTRIBUTION,
    SOURCE_DIGEST_LABEL,
    BaseRecipe,
    ImageBuildError,
    checkout_root,
    file_digest_parts,
    host_mirror,
    host_suite,
    input_digest,
    source_digest,
    source_files,
)

REPO = Path(__file__).resolve().parents[2]

DEB822 = """\
Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment line
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
"""


def test_input_digest_separates_parts() -> None:
    assert input_digest(["ab", "c"]) != input_digest(["a", "bc"])
    assert input_digest(["a", b"b"]) == input_digest([b"a", "b"])
    assert len(input_digest(["x"])) == 16


def test_base_recipe_digest_ignores_mirror() -> None:
    first = BaseRecipe(suite="bookworm", mirror="http://one.invalid/debian", architecture="x86_64")
    second = BaseRecipe(suite="bookworm", mirror="http://two.invalid/debian", architecture="x86_64")
    assert first.image == second.image
    assert first.image.startswith("slogate-debian:")


def test_base_recipe_digest_follows_packages() -> None:
    plain = BaseRecipe(suite="bookworm", mirror="m", architecture="x86_64")
    more = BaseRecipe(suite="bookworm", mirror="m", architecture="x86_64", packages=("python3", "curl"))
    other_suite = BaseRecipe(suite="trixie", mirror="m", architecture="x86_64")
    assert plain.digest() != more.digest()
    assert plain.digest() != other_suite.digest()


def test_host_mirror_reads_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert host_mirror("bookworm", tmp_path) == "http://mirror.invalid/debian"


def test_host_mirror_reads_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# old style\ndeb [arch=amd64] http://old.invalid/debian bookworm main\n"
    )
    assert host_mirror("bookworm", tmp_path) == "http://old.invalid/debian"


def test_host_mirror_missing_suite_names_fix(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    with pytest.raises(ImageBuildError, match="--mirror") as raised:
        host_mirror("trixie", tmp_path)
    assert "'trixie'" in str(raised.value)


def test_host_suite_reads_codename(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\n')
    assert host_suite(os_release) == "bookworm"
    os_release.write_text('NAME="Something"\n')
    with pytest.raises(ImageBuildError, match="--suite"):
        host_suite(os_release)


def test_source_files_skip_bytecode(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        (tmp_path / name).write_text(name)
    (tmp_path / "harness" / "__pycache__").mkdir(parents=True)
    (tmp_path / "harness" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "harness" / "x.py").write_text("x = 1\n")
    (tmp_path / "target_service").mkdir()
    (tmp_path / "target_service" / "Dockerfile").write_text("FROM scratch\n")
    names = sorted(path.relative_to(tmp_path).as_posix() for path in source_files(tmp_path))
    assert names == [
        ".dockerignore",
        "README.md",
        "harness/x.py",
        "pyproject.toml",
        "target_service/Dockerfile",
    ]


def test_gateway_inputs_change_with_source(tmp_path: Path) -> None:
    source = tmp_path / "harness" / "x.py"
    source.parent.mkdir()
    source.write_text("x = 1\n")
    before = input_digest(file_digest_parts(tmp_path, [source]))
    source.write_text("x = 2\n")
    assert input_digest(file_digest_parts(tmp_path, [source])) != before


def test_missing_distribution_pattern_reads_pip_error() -> None:
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement async-timeout>=4.0.3\n"
        'ERROR: No matching distribution found for async-timeout>=4.0.3; python_full_version < "3.11.3"\n'
    )
    found = MISSING_DISTRIBUTION.search(stderr)
    assert found is not None
    assert found.group(1).split(";")[0].strip() == "async-timeout>=4.0.3"


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower().replace("_", "-") for line in requirements}


def test_image_requirements_are_project_dependencies() -> None:
    lines = (REPO / "target_service" / "requirements.txt").read_text().splitlines()
    image = _names([line for line in lines if line.strip() and not line.startswith("#")])
    project = _names(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    assert image
    assert image <= project, f"in the image's requirements but not in pyproject.toml: {image - project}"


def test_dockerignore_admits_build_inputs() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    for needed in ("!pyproject.toml", "!README.md", "!harness/", "!target_service/", "!build/wheels/"):
        assert needed in lines
    assert "*" in lines


class _Image:
    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels


class _Images:
    def __init__(self, labels: dict[str, str]) -> None:
        self.image = _Image(labels)

    def get(self, name: str) -> _Image:
        return self.image


class _Client:
    def __init__(self, labels: dict[str, str]) -> None:
        self.images = _Images(labels)


def _checkout(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        (tmp_path / name).write_text(name)
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "x.py").write_text("x = 1\n")
    (tmp_path / "target_service").mkdir()
    (tmp_path / "target_service" / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def test_current_gateway_image_accepted(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    client = _Client({SOURCE_DIGEST_LABEL: source_digest(root)})
    require_current_gateway(client, "slogate-gateway:latest", root)  # type: ignore[arg-type]


def test_stale_gateway_image_rejected(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    client = _Client({SOURCE_DIGEST_LABEL: source_digest(root)})
    (root / "harness" / "x.py").write_text("x = 2\n")
    with pytest.raises(StackError, match=r"built from other sources.*make offline-images"):
        require_current_gateway(client, "slogate-gateway:latest", root)  # type: ignore[arg-type]


def test_unlabelled_gateway_image_rejected(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="source-digest=missing"):
        require_current_gateway(_Client({}), "slogate-gateway:latest", _checkout(tmp_path))  # type: ignore[arg-type]


def test_installed_package_skips_source_check() -> None:
    require_current_gateway(_Client({}), "slogate-gateway:latest", None)  # type: ignore[arg-type]


def test_checkout_root_is_this_repository() -> None:
    assert checkout_root() == REPO
