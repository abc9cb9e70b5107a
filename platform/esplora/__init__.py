"""esplora: spatially precise text-to-image data curation and ESPLoRA training."""

__version__ = "0.1.0"
