"""``harness doctor``: is a user's PCA call reproducible, and which factors change its result?

``harness.doctor(adata_or_path, ...)`` runs the diagnosis (:mod:`harness.doctor.api`); the
package itself is callable so that ``import harness.doctor`` does not hide that function.
Submodules: ``api`` (``doctor()``, its report and the command line), ``inputs`` (checks of the
matrix PCA sees), ``model`` (the call, a variation, an effect), ``plan`` (which variations run),
``child`` (the PCA child processes), ``process`` (process groups, time limit, clean-up),
``effects`` (each run compared with the baseline), ``advice`` (the fixes), ``markdown`` (the
report as Markdown), ``pipeline`` (``--pipeline``: a user's script run twice) and ``tracer``
(that script's child process).
"""

from __future__ import annotations

import sys
import types
from typing import Any


def doctor(*args: Any, **kwargs: Any) -> Any:
    """See :func:`harness.doctor.api.doctor` (imported on first call: it loads scanpy)."""
    from harness.doctor import api  # keeps `import harness.doctor` light (api loads scanpy)

    return api.doctor(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`doctor`: importing ``harness.doctor`` binds the package
    attribute ``harness.doctor`` to this module, which would hide the function otherwise."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return doctor(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
