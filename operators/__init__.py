"""Candor's Holoscan operators: one per pipeline stage, thin adapters over ``candor``."""
