"""Training, evaluation and synthetic data for Candor's models (not needed at inference)."""
