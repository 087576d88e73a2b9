"""The console human-readable output goes to."""

from __future__ import annotations

import sys

from rich.console import Console

# Piped or redirected output gets a wide fixed width, so that tables are not cut to 80 columns in logs.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
