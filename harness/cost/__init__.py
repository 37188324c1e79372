"""Token prices per model and the cost of a run's requests."""
