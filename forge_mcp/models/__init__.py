"""The model registry: versions, stages, gates, lineage and model cards."""
