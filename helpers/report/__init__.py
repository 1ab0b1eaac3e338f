"""What the lessons report: machine-dependent claims, the results files, the tables and plots.

- :mod:`~helpers.report.claims`   machine-dependent figures: reported, or raised in the test run; each
  lesson's closing table
- :mod:`~helpers.report.results`  ``results/<scale>/<notebook>.json``: records that say what they are,
  validated when written
- :mod:`~helpers.report.summary`  the side-by-side table of every lesson's main pipelines (the summary
  lesson, the README)
- :mod:`~helpers.report.guide`    which pipeline for your data, quoting the measured figures
- :mod:`~helpers.report.plots`    memory timelines, throughput bars, scaling plots
"""
