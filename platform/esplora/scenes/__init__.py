"""The procedural scene world: scenes with exact ground truth, rendered offline."""
