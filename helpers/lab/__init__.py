"""How the series measures and runs things: not needed to train, needed to know what it costs.

- :mod:`~helpers.lab.sampling`    :class:`Sampler`, the background loop of every monitor
- :mod:`~helpers.lab.memory`      :class:`MemoryMonitor`: anonymous vs file-backed memory of a process tree
- :mod:`~helpers.lab.throughput`  samples/s of an input pipeline alone and inside ``fit`` (one protocol)
- :mod:`~helpers.lab.machine`     where a lesson runs, the processor, the CPUs a process may use
- :mod:`~helpers.lab.quiet`       the one way to silence TensorFlow's C++ start-up log
- :mod:`~helpers.lab.recipes`     work measured in a fresh process (:func:`in_fresh_process`) and the
  recipes and input routes of lessons 01/02/05/06 it runs
- :mod:`~helpers.lab.workers`     worker processes: start methods, copy-on-write, none left behind (lesson 06)
- :mod:`~helpers.lab.budget`      a real memory limit (:func:`run_limited`); a file's page cache (lesson 07)
- :mod:`~helpers.lab.gpu`         :class:`GpuMonitor`: GPU utilisation and memory through NVML
- :mod:`~helpers.lab.service`     tf.data service servers in processes of their own (lesson 08)
- :mod:`~helpers.lab.trainers`    several trainer processes under ``MultiWorkerMirroredStrategy`` (lesson 08)
- :mod:`~helpers.lab.order`       generators and datasets that show the order Keras sees (lesson 03)
- :mod:`~helpers.lab.seeding`     what worker processes draw from unseeded and seeded generators (lesson 06)
"""
