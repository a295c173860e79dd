"""The coordinator: party registry, dataset catalog, job state and scheduling. Never sees data."""
