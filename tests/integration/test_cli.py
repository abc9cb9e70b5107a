"""The ``esplora`` command line, run as users run it (the installed console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ESPLORA = str(Path(sys.executable).parent / "esplora")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ESPLORA, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def run_json(*args: str) -> object:
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_db_lifecycle_and_info(tmp_path: Path) -> None:
    before = run_json("db", "current")
    assert before["current"] is None and before["head"]
    assert "esplora db upgrade" in run("info").stdout  # says what to do next
    assert run("db", "upgrade").returncode == 0
    after = run_json("db", "current")
    assert after["up_to_date"] and after["current"] == before["head"]
    info = run_json("info")
    home = Path(os.environ["ESPLORA_HOME"]).resolve()
    assert info["home"] == str(home)
    assert info["database_url"] == f"sqlite:///{home / 'esplora.db'}"
    assert info["broker_url"] == "filesystem://" and info["deployment"] == "embedded"
    assert info["profile"] == "real" and info["models_dir"] == str(home / "models")
    assert run("db", "downgrade", "base").returncode == 0
    assert run_json("db", "current")["current"] is None


def test_postgres_url_from_the_environment_with_password_hidden(postgres_url: str) -> None:
    env = {"ESPLORA_DATABASE_URL": postgres_url.replace("@", ":s3cret@")}
    assert run("db", "upgrade", env=env).returncode == 0
    result = run("info", "--json", env=env)
    info = json.loads(result.stdout)
    assert info["store"]["backend"] == "postgresql" and info["store"]["up_to_date"]
    assert "s3cret" not in result.stdout


def test_tore_prints_the_rewrite_and_reports_clauses() -> None:
    result = run("tore", "a photo of a cat to the right of a dog, at dusk")
    assert result.stdout.strip() == "a photo of a dog to the left of a cat, at dusk"
    report = run_json("tore", "a car to the right of a tree and a cat below a dog below a bird")
    assert report["rewritten"] == "a tree to the left of a car and a cat below a dog below a bird"
    assert [c["rewritten"] for c in report["clauses"]] == [True, False]
    assert report["clauses"][1]["ambiguous"]


def test_tore_with_a_custom_weak_set() -> None:
    result = run("tore", "a cat to the left of a dog", "--weak", "left_of")
    assert result.stdout.strip() == "a dog to the right of a cat"


def test_relation_scores_every_rule_that_supports_it() -> None:
    rows = run_json("relation", "left_of", "0,0,10,10", "20,0,30,10")
    assert {r["rule"] for r in rows} == {
        "esplora-soft",
        "esplora-strict",
        "t2i-compbench",
        "geneval",
        "visor",
    }
    assert all(r["score"] == 1.0 for r in rows)
    depth = run_json("relation", "in_front_of", "0,0,10,10", "5,0,15,10", "--disparity", "0.9,0.3")
    assert {r["rule"] for r in depth} == {"esplora-soft", "esplora-strict", "t2i-compbench"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("relation", "left_of", "10,0,5,10", "0,0,1,1"), "x0 < x1"),
        (("relation", "left_of", "0,0,nan,10", "0,0,1,1"), "nan"),
        (("relation", "left_of", "1,2,3", "0,0,1,1"), "1,2,3"),
        (("relation", "sideways", "0,0,1,1", "2,0,3,1"), "sideways"),
        (("relation", "in_front_of", "0,0,1,1", "2,0,3,1", "--disparity", "-1,0.5"), "-1"),
        (("relation", "left_of", "0,0,1,1", "2,0,3,1", "--tau", "0.5"), "0.5"),
        (("tore", "a cat left of a dog", "--weak", "upwards"), "upwards"),
    ],
)
def test_user_mistakes_are_clear_errors_without_tracebacks(
    args: tuple[str, ...], message: str
) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.startswith("error:")
    assert message in result.stderr


def test_an_unreachable_store_is_a_clear_error() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    result = run("db", "current", env={"ESPLORA_DATABASE_URL": url})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot use the store at postgresql+psycopg://nobody@127.0.0.1:1/none" in result.stderr
