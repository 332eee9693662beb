"""The published study: one asv run per environment of asv.conf.json, resumable
(:mod:`~harness.study.driver`), the BLAS backends it needs (:mod:`~harness.study.setup_backends`)
and the record of environments without results (:mod:`~harness.study.missing`)."""
