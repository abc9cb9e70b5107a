"""bench/gpu_sizing.py is run on GPU machines only; its --smoke mode runs the same code paths
on the CPU with tiny sizes, so a broken script shows up here before a GPU is spent on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_sizing_smoke_runs_every_section(tmp_path: Path) -> None:
    out = tmp_path / "sizing.json"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_sizing.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert time.perf_counter() - started < 60
    summary = json.loads(out.read_text())
    assert summary == json.loads(result.stdout)  # the JSON summary is what it prints
    assert summary["mode"] == "smoke" and summary["device"] == "cpu"
    flux = summary["flux_lora_training"]
    assert flux["lora_params"] > 0 and flux["params"] > flux["lora_params"]
    assert [(c["size"], c["gradient_checkpointing"]) for c in flux["cases"]] == [
        (64, False), (64, True), (128, True), (128, False)]  # fmt: skip
    cases = flux["cases"] + summary["grounding_dino"]["cases"] + summary["depth_anything"]["cases"]
    assert all(c["status"] == "ok" for c in cases), cases
    assert all(c.get("step_s", 1) > 0 and c.get("images_per_s", 1) > 0 for c in cases)
