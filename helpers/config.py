"""The scale knob and the project's folders, in one place so every lesson and test agrees.

``TUTORIAL_SCALE`` picks the data size:

========= ============ ===================== =========== =====================================
scale     digits       digits float32 in RAM fish JPEGs  used by
========= ============ ===================== =========== =====================================
ci        60,000       ~180 MiB              600         the test run (every notebook, fast)
default   320,000      ~957 MiB (~1 GB)      4,000       the committed outputs; fits a 12.7 GB Colab
large     1,280,000    ~3.7 GiB (4x default) 16,000      shows streaming memory does not grow
========= ============ ===================== =========== =====================================

Lesson 07 adds a class-sorted uint8 digits file larger than its memory limit: 768 MiB at ``ci``,
1.5 GiB at ``default``, 4 GiB at ``large`` (``over_ram_mb``), under a limit that leaves 128, 256,
512 MiB of page cache (``page_cache_mb``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "TUTORIAL_SCALE"
REPO_URL = "https://github.com/OWNER/keras-larger-than-memory"
"""The series' repository: the setup cell of every lesson clones it, the badges and the README point
at it (a test checks they agree). ``OWNER`` is a placeholder until the repository is published."""
MIB = 2**20
"""Bytes in a MiB: every figure of the series is in MiB."""


@dataclass(frozen=True)
class Scale:
    """Sizes of everything a lesson generates or trains on at one scale."""

    name: str
    n_digits: int
    """Number of 28x28 digit images."""
    n_fish: int
    """Number of fish JPEG images."""
    fish_image_size: int = 128
    """Side of the square fish images, in pixels."""
    batch_size: int = 128
    """The one batch size of the series (same everywhere unless a lesson is about it)."""
    warmup_steps: int = 10
    """Steps excluded from a throughput measurement (tracing, first batches)."""
    timed_steps: int = 100
    """Steps timed after the warm-up."""
    epochs: int = 2
    """Epochs for the runs whose point is accuracy."""
    over_ram_mb: int = 768
    """Size of lesson 07's class-sorted digits file (uint8), in MiB: larger than its memory limit."""
    page_cache_mb: int = 128
    """Room for page cache that lesson 07's memory limit leaves (on top of the child's own baseline);
    at most half of ``over_ram_mb``."""

    @property
    def digits_float32_mb(self) -> float:
        """MiB the digit images take once converted to float32 (what the model sees)."""
        return self.n_digits * 28 * 28 * 4 / MIB


SCALES: dict[str, Scale] = {
    "ci": Scale("ci", n_digits=60_000, n_fish=600, timed_steps=40, epochs=1),
    "default": Scale("default", n_digits=320_000, n_fish=4_000, over_ram_mb=1536, page_cache_mb=256),
    "large": Scale("large", n_digits=1_280_000, n_fish=16_000, over_ram_mb=4096, page_cache_mb=512),
}


def get_scale(name: str | None = None) -> Scale:
    """Return the :class:`Scale` named by ``name`` or by ``$TUTORIAL_SCALE`` (default: ``default``)."""
    name = (name or os.environ.get(ENV_VAR) or "default").strip().lower()
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"{ENV_VAR}={name!r} is not one of {sorted(SCALES)}") from None


def project_root() -> Path:
    """The folder holding ``helpers/`` (works from notebooks/, tests/ and worker processes)."""
    return Path(__file__).resolve().parent.parent


def data_dir(scale: Scale | None = None) -> Path:
    """``data/<scale>/``: generated data of one scale (``$TUTORIAL_DATA`` overrides ``data/``)."""
    scale = scale or get_scale()
    base = Path(os.environ.get("TUTORIAL_DATA") or project_root() / "data")
    return base / scale.name


def results_dir(scale: Scale | None = None) -> Path:
    """``results/<scale>/``: measured figures of one scale."""
    scale = scale or get_scale()
    return project_root() / "results" / scale.name


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` so that no reader ever sees half of it: a temporary file beside
    it (named for this process), then one rename. Returns the path written."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
