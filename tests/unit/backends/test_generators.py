"""Generator plumbing that needs no model: request checks, adapter identity, producer parts,
CLI helpers, and that importing the generator modules stays light."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from esplora.backends.base import GenerationRequest, PhaseClock
from esplora.backends.generators import (
    MAX_SEED,
    SIZE_MULTIPLE,
    InvalidRequest,
    check_request,
    pipeline_configs,
)
from esplora.backends.lora import (
    ADAPTER_WEIGHTS,
    FLUX_TARGETS,
    SDXL_TARGETS,
    adapter_info,
    adapter_ref,
)
from esplora.backends.registry import BackendError, ModelUnavailable
from esplora.cli import app
from esplora.cli.generate import DEFAULTS, build_request


def _request(**changes: object) -> GenerationRequest:
    values: dict[str, object] = {"prompt": "a cat", "seed": 1, "width": 64, "height": 48}
    return GenerationRequest(**{**values, **changes})  # type: ignore[arg-type]


def test_sizes_must_be_multiples_of_the_models_step() -> None:
    assert SIZE_MULTIPLE == {"flux": 16, "sdxl": 8}
    check_request(_request(), 16, "flux")
    check_request(_request(width=72), 8, "sdxl")
    with pytest.raises(InvalidRequest, match=r"flux needs .* divisible by 16, got 72×48"):
        check_request(_request(width=72), 16, "flux")
    with pytest.raises(InvalidRequest, match="positive"):
        check_request(_request(height=0), 8, "sdxl")
    with pytest.raises(InvalidRequest, match="steps"):
        check_request(_request(steps=0), 8, "sdxl")
    for seed in (-1, MAX_SEED + 1):
        with pytest.raises(InvalidRequest, match="seed"):
            check_request(_request(seed=seed), 8, "sdxl")
    assert issubclass(InvalidRequest, BackendError)  # the CLI prints it as a plain error


def test_build_request_uses_the_generators_defaults() -> None:
    flux = build_request("flux", "p", seed=3, steps=None, guidance=None, width=64, height=64)
    assert (flux.steps, flux.guidance) == DEFAULTS["flux"] == (28, 3.5)
    sdxl = build_request("sdxl", "p", seed=3, steps=5, guidance=None, width=64, height=64)
    assert (sdxl.steps, sdxl.guidance) == (5, DEFAULTS["sdxl"][1])
    scenes = build_request("scenes", "p", seed=0, steps=None, guidance=2.0, width=50, height=30)
    assert (scenes.steps, scenes.guidance, scenes.width) == (28, 2.0, 50)  # no size rule
    with pytest.raises(InvalidRequest, match="16"):
        build_request("flux", "p", seed=0, steps=None, guidance=None, width=100, height=64)


def test_phase_clock_adds_measured_spans() -> None:
    clock = PhaseClock()
    clock.add("forward", 0.25)
    clock.add("forward", 0.5)
    with clock.phase("decode"):
        pass
    totals = clock.drain()
    assert totals["forward"] == 0.75 and set(totals) == {"forward", "decode"}
    assert clock.drain() == {}


def test_adapter_identity_is_the_directory_name_and_the_weights_hash(tmp_path: Path) -> None:
    adapter = tmp_path / "spatial-v1"
    adapter.mkdir()
    (adapter / ADAPTER_WEIGHTS).write_bytes(b"weights")
    ref = adapter_ref(adapter)
    assert ref.name == "spatial-v1" and ref.weights == adapter / ADAPTER_WEIGHTS
    assert ref.digest == hashlib.sha256(b"weights").hexdigest()[:12]
    assert ref.label(0.75) == f"+lora:spatial-v1@{ref.digest}:0.75"
    assert ref.label(1.0).endswith(":1")
    single = adapter_ref(adapter / ADAPTER_WEIGHTS)  # a bare file names itself by its stem
    assert single.name == "pytorch_lora_weights" and single.digest == ref.digest
    (adapter / ADAPTER_WEIGHTS).write_bytes(b"other weights")
    assert adapter_ref(adapter).digest != ref.digest
    assert adapter_info(adapter) is None


def test_adapter_directories_without_one_weights_file_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no LoRA adapter at"):
        adapter_ref(tmp_path / "missing")
    with pytest.raises(ModelUnavailable, match=r"has no \.safetensors"):
        adapter_ref(tmp_path)
    (tmp_path / "a.safetensors").write_bytes(b"a")
    assert adapter_ref(tmp_path).weights.name == "a.safetensors"  # one file: any name
    (tmp_path / "b.safetensors").write_bytes(b"b")
    with pytest.raises(ModelUnavailable, match=r"has 2 \.safetensors"):
        adapter_ref(tmp_path)
    (tmp_path / "esplora_adapter.json").write_text(json.dumps({"rank": 4}))
    assert adapter_info(tmp_path) == {"rank": 4}


def test_lora_targets_cover_attention_and_feed_forward() -> None:
    assert {"to_q", "to_k", "to_v", "to_out.0"} <= set(FLUX_TARGETS) & set(SDXL_TARGETS)
    assert {"add_q_proj", "to_add_out", "ff_context.net.2"} <= set(FLUX_TARGETS)
    assert {"ff.net.0.proj", "ff.net.2"} <= set(SDXL_TARGETS)


def test_pipeline_configs_ignore_private_keys_and_dtype() -> None:
    model = SimpleNamespace(config={"_class_name": "X", "_diffusers_version": "0.1", "width": 4})
    text = SimpleNamespace(config=SimpleNamespace(to_dict=lambda: {"dtype": "bf16", "hidden": 8}))
    pipe = SimpleNamespace(components={"vae": model, "text": text, "tokenizer": object()})
    assert pipeline_configs(pipe) == {
        "pipeline": "SimpleNamespace",
        "vae": {"width": 4},
        "text": {"hidden": 8},
    }


def test_importing_the_generator_modules_imports_no_ml_library() -> None:
    code = (
        "import sys, esplora.backends.generators, esplora.backends.lora, esplora.cli.generate\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'peft') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.png"], "give a PROMPT"),
        (["a cat"], "give --out FILE"),
        (["a cat", "--out", "x.gif"], "unknown image format"),
        (["a cat", "--out", "x.png", "--width", "100"], "divisible by 16"),
        (["a cat", "--out", "x.png", "--generator", "sdxl", "--height", "60"], "divisible by 8"),
    ],
)
def test_cli_rejects_bad_arguments_before_loading_a_model(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["generate", *args])
    assert result.exit_code != 0
    assert message in str(result.exception)
    assert not (tmp_path / "x.png").exists()
