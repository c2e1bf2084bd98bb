"""Model sources: load a model offline and describe its inputs, outputs, task and preprocessing."""
