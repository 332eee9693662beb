"""scanpy's own commits: the suite against a scanpy clone (asv.scanpy.conf.json), the numerical
history of a range (``harness history``) and the pull-request gate (``harness gate``), issue #12.

Modules: ``git`` (the clone, ranges, source keys), ``asvenv`` (asv's environment and build
cache), ``envhook`` (asv's build and install steps), ``probe`` (the PCA checks, run inside a
commit's environment), ``store`` (results/history/), ``changes`` (what changed and what kind),
``bisect`` (every change point), ``run`` (the history), ``gate``, ``text`` and ``writeup``.
"""
