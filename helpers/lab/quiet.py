"""The one way the series silences TensorFlow's C++ start-up log, which ignores ``TF_CPP_MIN_LOG_LEVEL``:
send file descriptor 2 to /dev/null while TensorFlow (or a module that imports it) is imported."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send this process's file descriptor 2 (and that of children started meanwhile) to
    /dev/null during the block; restore it after."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up log hidden (see :func:`quiet_stderr`)."""
    with quiet_stderr():
        import tensorflow  # noqa: F401
