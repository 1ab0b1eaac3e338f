"""Helpers for the "Keras on data larger than memory" tutorial series.

One concern per module, each importable from a notebook and from a worker process:

- :mod:`helpers.config`      the scale table (``TUTORIAL_SCALE``) and the project's folders
- :mod:`helpers.memory`      :class:`~helpers.memory.MemoryMonitor`: anonymous vs file-backed memory
- :mod:`helpers.throughput`  samples/s of an input pipeline alone and inside ``fit``
- :mod:`helpers.datasets`    deterministic digit arrays and fish JPEGs, written atomically
- :mod:`helpers.models`      the one digits CNN and the one fish counter of the series
- :mod:`helpers.results`     ``results/<scale>/<notebook>.json``
- :mod:`helpers.plots`       memory timelines, throughput bars, scaling plots

Modules that need TensorFlow (``models``, ``throughput``) import it themselves, so
``import helpers`` stays light.
"""

__version__ = "0.1.0"
