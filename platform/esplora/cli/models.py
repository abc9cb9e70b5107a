"""``esplora models``: the registered model backends, and their tiny offline twins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from esplora.cli._common import JsonOption, console, emit, settings
from esplora.errors import EsploraError

app = typer.Typer(help="Model backends: list them, write tiny offline twins.", no_args_is_help=True)


@app.command("make-tiny")
def make_tiny(
    directory: Annotated[
        Path | None, typer.Argument(help="Where to write them (default: the models dir).")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Write only this model (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
) -> None:
    """Write tiny random-weight versions of every model backend into DIRECTORY/<name>."""
    from esplora.backends import tiny

    target = (directory or settings().resolved_models_dir).expanduser().resolve()
    unknown = sorted(set(only or ()) - set(tiny.TINY_BUILDERS))
    if unknown:
        known = ", ".join(tiny.TINY_BUILDERS)
        raise EsploraError(f"no tiny model named {', '.join(unknown)}; known: {known}")
    console.print(f"writing tiny models (random weights, offline) to {target}", highlight=False)

    def progress(name: str, path: Path, seconds: float) -> None:
        console.print(f"  {name:<16} {path}  ({seconds:.2f} s)", highlight=False, soft_wrap=True)

    written = tiny.make_tiny(target, names=only, seed=seed, on_model=progress)
    console.print(
        f"{len(written)} tiny models written; use them with --profile tiny "
        f"(ESPLORA_PROFILE=tiny, ESPLORA_MODELS_DIR={target})",
        highlight=False,
        soft_wrap=True,
    )


def _rows(models_dir: Path) -> list[dict[str, Any]]:
    from esplora.backends import registry, tiny

    config = settings()
    selected = {"extractor": config.extractor, "detector": config.detector}
    selected["depth"] = config.depth_model
    rows = []
    for entry in registry.specs():
        path = models_dir / entry.name
        has_twin = entry.name in tiny.TINY_BUILDERS
        rows.append(
            {
                "kind": entry.kind.value,
                "name": entry.name,
                "real_id": entry.real_id,
                "description": entry.description,
                "selected": selected.get(entry.kind.value) == entry.name,
                "tiny_path": str(path) if has_twin else None,
                "tiny_present": has_twin and tiny.tiny_info(path) is not None,
            }
        )
    return rows


@app.command("list")
def list_models(as_json: JsonOption = False) -> None:
    """Show the registered backends per kind, their real model ids and their tiny twins."""
    config = settings()
    models_dir = config.resolved_models_dir
    rows = _rows(models_dir)
    data = {"profile": config.profile, "models_dir": str(models_dir), "backends": rows}

    def render() -> None:
        console.print(f"profile {config.profile}; tiny models in {models_dir}", highlight=False)
        for row in rows:
            mark = "*" if row["selected"] else " "
            model = row["real_id"] or "(no model)"
            if row["tiny_path"] is None:
                twin = ""
            else:
                twin = "tiny: present" if row["tiny_present"] else "tiny: missing"
            line = f"{mark} {row['kind']:<9} {row['name']:<16} {model:<44} {twin}"
            console.print(line.rstrip(), highlight=False, soft_wrap=True)
        console.print("(* selected by the settings)")

    emit(data, as_json, render)
