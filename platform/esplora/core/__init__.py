"""The pure spatial core: relation vocabulary, rules, depth statistics, verdicts, grammar, TORE.

Standard library and numpy only (an import-linter contract enforces it).
"""
