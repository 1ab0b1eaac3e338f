"""Helpers for the "Keras on data larger than memory" tutorial series.

One concern per module, each importable from a notebook and from a worker process. The whole map:

Foundations
- :mod:`helpers.session`     :func:`~helpers.session.start`, the end of every lesson's setup cell
- :mod:`helpers.config`      the scale table (``TUTORIAL_SCALE``), the project's folders, ``MIB``,
  ``REPO_URL``, :func:`~helpers.config.write_atomic` (every small file the series writes)
- :mod:`helpers.datasets`    deterministic digit arrays and fish JPEGs, generated and written atomically
- :mod:`helpers.models`      the one digits CNN and the one fish counter of the series

Measuring
- :mod:`helpers.sampling`    :class:`~helpers.sampling.Sampler`, the background loop of every monitor
- :mod:`helpers.memory`      :class:`~helpers.memory.MemoryMonitor`: anonymous vs file-backed memory
- :mod:`helpers.throughput`  samples/s of an input pipeline alone and inside ``fit`` (one protocol)
- :mod:`helpers.quiet`       the one way to silence TensorFlow's C++ start-up log
- :mod:`helpers.recipes`     work measured in a fresh process: :func:`~helpers.recipes.in_fresh_process`
  and the recipes and input routes of lessons 01/02/05/06 it runs
- :mod:`helpers.workers`     worker processes: start methods, copy-on-write, none left behind (lesson 06)
- :mod:`helpers.budget`      a real memory limit: :func:`~helpers.budget.run_limited`; a file's page cache
- :mod:`helpers.gpu`         :class:`~helpers.gpu.GpuMonitor`: GPU utilisation and memory through NVML
- :mod:`helpers.plots`       memory timelines, throughput bars, scaling plots

The loaders the lessons build
- :mod:`helpers.memmap_dataset`  :class:`~helpers.memmap_dataset.MemmapDataset` (lesson 02)
- :mod:`helpers.order`       generators and datasets that show the order Keras sees (lesson 03)
- :mod:`helpers.image_files` :class:`~helpers.image_files.ImageFileDataset` (lesson 04)
- :mod:`helpers.caches`      LRU, fill-once and byte-budget caches (lesson 04)
- :mod:`helpers.tfdata`      the tf.data routes and TFRecord shards (lesson 05)
- :mod:`helpers.augment`     a CPU-heavy augmentation, in Pillow and in TensorFlow ops (lesson 06)
- :mod:`helpers.service`     tf.data service servers in processes of their own, the trainer's rounds (lesson 08)
- :mod:`helpers.trainers`    several trainer processes under ``MultiWorkerMirroredStrategy`` (lesson 08)

Results
- :mod:`helpers.claims`      machine-dependent figures: reported, or raised in the test run; each lesson's table
- :mod:`helpers.results`     ``results/<scale>/<notebook>.json``: records that say what they are
  (id, and for a main pipeline its :class:`~helpers.results.Row`), validated when written; the kinds
- :mod:`helpers.summary`     the side-by-side table of every lesson's main pipelines (lesson 09, README)
- :mod:`helpers.guide`       which pipeline for your data, quoting the measured figures (lesson 09)

Modules that need TensorFlow (``models``, ``throughput``, the loaders) import it themselves, so
``import helpers`` stays light.
"""

__version__ = "0.2.0"
