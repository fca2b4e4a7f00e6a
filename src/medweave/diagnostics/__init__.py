"""Machine learning for diagnosis: datasets, models and their evaluation (issue 7)."""
