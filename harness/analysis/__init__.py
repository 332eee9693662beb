"""Analysis: metrics between PCA results, stability tables, cross-environment deviation and
comparisons. Frames and dataclasses out, no text (that is :mod:`harness.render`)."""
