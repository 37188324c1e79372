"""The report of a fault scenario, opened in headless Chromium: charts render with the fault shaded.

Needs Debian's chromium package (`make browser`); without it the browser test skips, as on CI.
Set SLOGATE_SCREENSHOT_DIR to keep the screenshot (`make screenshot` does).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXTERNAL_REFERENCE = re.compile(r"(?i)(https?:|ftp:|wss?:|//[a-z0-9.-]+\.[a-z]{2,}|\bsrc\s*=|@import|url\()")
# The fault band: #cf222e at 13% opacity over white.
FAULT_SHADE = (249, 226, 228)


@pytest.fixture(scope="module")
def fault_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    result = subprocess.run(
        [
            sys.executable, "-m", "harness.cli", "run", str(REPO / "scenarios" / "redis-outage.yaml"),
            "--duration-scale", "0.5", "--reports-dir", str(reports), "--run-id", "fault",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return reports / "fault" / "report.html"


def test_fault_report_has_no_external_reference(fault_report: Path) -> None:
    html = fault_report.read_text(encoding="utf-8")
    assert EXTERNAL_REFERENCE.findall(html) == []
    assert html.count('<rect class="fault"') >= 4


def shaded_pixels(image: Image.Image) -> int:
    rgb = image.convert("RGB")
    return sum(
        1
        for pixel in rgb.get_flattened_data()
        if all(abs(channel - shade) <= 4 for channel, shade in zip(pixel, FAULT_SHADE, strict=True))
    )


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed; `make browser` installs Debian's package"
)
def test_chromium_renders_shaded_fault(fault_report: Path, tmp_path: Path) -> None:
    keep = os.environ.get("SLOGATE_SCREENSHOT_DIR")
    screenshot = Path(keep) / "report.png" if keep else tmp_path / "report.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1200,2400",
        f"--screenshot={screenshot}", fault_report.resolve().as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(screenshot) as image:
        assert image.size == (1200, 2400)
        # Each of the first charts has a band about 80 px wide and 180 px high.
        assert shaded_pixels(image) > 20_000
