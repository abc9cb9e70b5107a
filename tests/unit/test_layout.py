"""The layout's promises: source roots are not packages and never shadow the standard library."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"platform": "esplora", "workers": "esplora_workers", "ui": "esplora_ui"}
ROOTS["training"] = "esplora_training"


def test_import_platform_is_the_standard_library_even_from_the_repository_root() -> None:
    # Run from the repo root, where a `platform` package would win if it existed.
    code = "import platform, sys; print(platform.__file__); platform.system()"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(out.strip()).resolve().parent == stdlib


@pytest.mark.parametrize(("root", "package"), sorted(ROOTS.items()))
def test_source_roots_hold_one_package_and_are_not_packages(root: str, package: str) -> None:
    assert not (REPO / root / "__init__.py").exists()
    assert (REPO / root / package / "__init__.py").is_file()
    module = __import__(package)
    assert Path(module.__file__).resolve().parent == (REPO / root / package).resolve()


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "esplora", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "db" in result.stdout and "tore" in result.stdout
