"""Draw the figures of docs/relations.md from the rules themselves.

    .venv/bin/python docs/figures/relation_figures.py

writes ``relations_2d.png`` and ``relation_depth.png`` next to this file.
"""

from __future__ import annotations

from pathlib import Path

from esplora.analytics.figures import write_relation_figures

if __name__ == "__main__":
    for path in write_relation_figures(Path(__file__).resolve().parent):
        print(f"wrote {path}")
