"""Use cases. Each service opens one unit of work, calls the core, and commits once."""
