"""Operator command groups kept out of processor/cli.py, which registers them."""
