"""Read-only analytics: relation statistics, explore queries, and figures of the rules."""
