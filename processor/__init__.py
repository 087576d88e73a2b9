"""ABC Bank transaction processor."""
