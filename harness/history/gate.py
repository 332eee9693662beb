"""``python -m harness gate BASE HEAD``: does HEAD change PCA's bits or speed against BASE?

Both commits are built and probed like a history's (same environment, build cache and stored
results: a commit a history or an earlier gate measured is not run again). One verdict covers
both: the bits (the mildest kind that fails is ``--fail-on``; a configuration that starts to
raise always fails) and the runtime (asv compare's significance test and ``--factor``: a
slowdown fails, a speed-up is reported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.history import changes
from harness.history.git import Repo
from harness.history.run import Plan, Prober, differences
from harness.history.store import Source

#: The bit-change kinds ``--fail-on`` accepts, mildest first.
FAIL_ON = changes.BIT_KINDS


@dataclass(frozen=True)
class GateVerdict:
    base: str
    head: str
    configs: int
    diff: dict[tuple[str, ...], dict[str, Any]]
    factor: float
    fail_on: str
    failures: list[str]

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def _usable(src: Source, name: str) -> None:
    if not src.ok:
        raise HarnessError(f"{name} ({src.commit[:9]}): {src.status}: {src.reason[:300]}")


def failures(diff: dict[tuple[str, ...], dict[str, Any]], factor: float, fail_on: str) -> list[str]:
    """One line per configuration whose change fails the gate."""
    threshold = FAIL_ON.index(fail_on)
    out = []
    for config, d in sorted(diff.items()):
        name = " ".join(config)
        bits = d.get("bits")
        if bits:
            kind = bits["kind"]
            if kind not in FAIL_ON:
                out.append(f"{name}: {kind}")
            elif FAIL_ON.index(kind) >= threshold:
                out.append(f"{name}: bits {kind}")
        rt = d.get("runtime")
        if rt and rt["ratio"] >= factor:
            out.append(f"{name}: {rt['ratio']:.2f}x slower")
    return out


def gate(
    repo: Repo,
    base: str,
    head: str,
    plan: Plan,
    *,
    python: str | None,
    results: Path,
    factor: float,
    fail_on: str,
    probe_timeout: float,
    log: Callable[[str], None],
) -> GateVerdict:
    """Measure both commits (or reuse what was stored) and decide."""
    if factor <= 1:
        raise HarnessError(f"--factor {factor:g}: must be above 1")
    shas = [repo.resolve(base), repo.resolve(head)]
    commits = repo.describe(shas)
    prober = Prober(
        repo,
        plan,
        python=python,
        results=results,
        refs=tuple(shas),
        probe_timeout=probe_timeout,
        log=log,
    )
    prober.start()
    try:
        sources = [prober.source(c, repo.source_key(c.sha)) for c in commits]
    finally:
        prober.env.unlock()
    for src, name in zip(sources, (base, head), strict=True):
        _usable(src, name)
    diff = differences(sources[0], sources[1], plan.configs(), factor)
    return GateVerdict(
        base=f"{base} ({shas[0][:9]})",
        head=f"{head} ({shas[1][:9]})",
        configs=len(plan.configs()),
        diff=diff,
        factor=factor,
        fail_on=fail_on,
        failures=failures(diff, factor, fail_on),
    )
