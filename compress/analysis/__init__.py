"""Analyses below every method: per-layer sensitivity, allocation, and the budget search driver."""
