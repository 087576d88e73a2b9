"""What the CLI tests share."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_processor_logger() -> Iterator[None]:
    """The CLIs reconfigure the "processor" logger (level, handler on the runner's stderr); undo it for other tests."""
    logger = logging.getLogger("processor")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
