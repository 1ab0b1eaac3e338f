"""Helpers for the "Keras on data larger than memory" tutorial series, in three parts.

- :mod:`helpers.pipelines`  **what you copy** into your project: ``MemmapDataset``, the splits,
  ``ImageFileDataset`` and its caches, the ``tf.data`` routes and TFRecord shards, the augmentation.
  Each file imports only the standard library, NumPy, Keras, TensorFlow and Pillow (and a sibling
  file it names), so the folder, or one file, works on its own.
- :mod:`helpers.lab`        how the series measures and runs things: memory, throughput, the machine,
  fresh processes and their recipes, worker processes, memory limits, the GPU, the tf.data service
  and trainers, the order and seeding demos.
- :mod:`helpers.report`     what the lessons report: claims, results files, the summary table, the
  decision guide, plots.

At the top, what every lesson shares:

- :mod:`helpers.session`    :func:`~helpers.session.start`, the end of every lesson's setup cell
- :mod:`helpers.config`     the scale table (``TUTORIAL_SCALE``), the project's folders, ``MIB``, ``REPO_URL``,
  :func:`~helpers.config.write_atomic` (every small file the series writes)
- :mod:`helpers.datasets`   deterministic digit arrays and fish JPEGs, generated and written atomically
- :mod:`helpers.models`     the one digits CNN and the one fish counter of the series

Imports go one way: ``pipelines`` imports nothing of the series; no module imports one that imports
it back (``tests/test_layout.py`` walks them). Modules that need TensorFlow import it themselves, so
``import helpers`` stays light.
"""

__version__ = "0.2.0"
