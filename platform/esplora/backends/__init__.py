"""Model backends (extractor, detector, depth, generator) behind small protocols and a registry."""
