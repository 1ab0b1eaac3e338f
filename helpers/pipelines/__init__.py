"""What you copy into your own project: the loaders the lessons build and measure.

Copy this folder (``pipelines/``) into your project and import it as a package, or copy one file:
each file's first docstring line says what it needs (NumPy, Keras, TensorFlow, Pillow) and which
sibling file, if any, comes with it (only ``augment.py`` has one: its dataset extends
``ImageFileDataset``). Nothing here imports the rest of the series.

- ``memmap_dataset.py``  :class:`MemmapDataset`, batches of a ``.npy`` pair read through ``np.memmap``;
  block shuffling within a memory budget for files larger than the page cache (lessons 02, 07)
- ``splits.py``          :func:`split_indices`, train/validation indices: shuffled, stratified, seeded,
  of rows or of whole blocks (lesson 07)
- ``image_files.py``     :class:`ImageFileDataset`, batches of image files decoded with Pillow, and
  the file index (lesson 04)
- ``caches.py``          LRU, fill-once and byte-budget caches for ``ImageFileDataset`` (lesson 04)
- ``tfdata.py``          the ``tf.data`` routes for a memmap and for JPEGs, TFRecord shards (lesson 05)
- ``augment.py``         a CPU-heavy augmentation in Pillow and in TensorFlow ops (lesson 06)

This file imports nothing, so ``import pipelines`` stays light; import the module you use
(``from pipelines.memmap_dataset import MemmapDataset``).
"""
