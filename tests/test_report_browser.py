"""The HTML report in headless Chromium (issue #14): every figure's axes hold visible data, every
environment appears once under one id, the headline says what the Markdown says, tables sort.

Needs the Debian packages chromium and chromium-driver (``make test`` installs them where it runs
as root); without them every test here is skipped, saying so.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from harness.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from test_results import generator

#: A pixel counts as data when some channel is below this: white and the heatmap's "not
#: measured" grey (#f2f2f2) do not.
DATA_BELOW = 235
#: The share of an axes' pixels that must be data.
MIN_SHARE = 0.03
MISSING = (
    "headless Chromium is not installed (Debian packages chromium and chromium-driver; "
    "`make test` installs them when it runs as root)"
)
RUNTIME_BENCHMARKS = ("pca.PCA.time_pca", "pca.PCA.peakmem_pca")


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1600,1200",
    ):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    session.set_page_load_timeout(60)
    yield session
    session.quit()


def one_thread_only(root: Path) -> None:
    """Keep the runtime benchmarks' threads=1 results only (as the study profile times them)."""
    for path in root.glob("*/*.json"):
        if path.name == "machine.json":
            continue
        data = json.loads(path.read_text())
        for bench in RUNTIME_BENCHMARKS:
            row = data["results"][bench]
            row[1][-1] = ["1"]  # threads: the last parameter, so every other value is threads=1
            row[0] = row[0][::2]
            for i in range(5, len(row)):
                if isinstance(row[i], list):
                    row[i] = row[i][::2]
        path.write_text(json.dumps(data))
    bench = root / "benchmarks.json"
    meta = json.loads(bench.read_text())
    for name in RUNTIME_BENCHMARKS:
        meta[name]["params"][-1] = ["1"]
    bench.write_text(json.dumps(meta))


@pytest.fixture(scope="module", params=["both thread counts", "1 thread only"])
def report(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "results"
    gen = generator()
    gen.generate(root, 6, profile="smoke", machines=1)
    if request.param == "1 thread only":
        one_thread_only(root)
    gen.add_sidecars(root)
    out = root.parent / "report"
    assert main(["report", str(root), str(out)]) == 0
    return out, request.param


@pytest.fixture(scope="module")
def page(report, browser):
    browser.get((report[0] / "report.html").resolve().as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    return browser


DATA_SHARES = """
const below = arguments[0];
return Array.from(document.querySelectorAll('figure')).map(fig => {
  const img = fig.querySelector('img');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const shares = JSON.parse(fig.dataset.axes).map(([x0, y0, x1, y1]) => {
    const w = x1 - x0 - 4, h = y1 - y0 - 4;  // inside the spines
    const d = ctx.getImageData(x0 + 2, y0 + 2, w, h).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] < below || d[i + 1] < below || d[i + 2] < below) n++;
    }
    return n / (w * h);
  });
  const colours = JSON.parse(fig.dataset.colours || '[]').map(hex => {
    const rgb = [1, 3, 5].map(k => parseInt(hex.slice(k, k + 2), 16));
    const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - rgb[0]) < 4 && Math.abs(d[i + 1] - rgb[1]) < 4
          && Math.abs(d[i + 2] - rgb[2]) < 4) n++;
    }
    return n;
  });
  return {id: fig.id, width: img.naturalWidth, shown: img.getBoundingClientRect().width,
          shares: shares, colours: colours, rows: JSON.parse(fig.dataset.rows || '[]'),
          series: JSON.parse(fig.dataset.series || '[]')};
});
"""


def test_every_figure_has_visible_data(page, report):
    figures = page.execute_script(DATA_SHARES, DATA_BELOW)
    names = {f["id"] for f in figures}
    assert {"fig-deviation", "fig-runtime-1-thread"} <= names
    assert ("fig-runtime-all-cores" in names) == (report[1] == "both thread counts")
    for fig in figures:
        assert fig["width"] > 100 and fig["shown"] > 0, fig["id"]
        assert fig["shares"], fig["id"]
        for share in fig["shares"]:
            assert share > MIN_SHARE, (fig["id"], fig["shares"])
        if fig["id"].startswith("fig-runtime"):
            assert len(fig["series"]) == len(set(fig["series"])) >= 2
            assert all(n > 50 for n in fig["colours"]), (fig["id"], fig["colours"])


def _environments(page) -> list[list[str]]:
    return page.execute_script(
        """return Array.from(document.querySelectorAll('table.environments tbody tr'))
               .map(r => Array.from(r.cells).map(c => c.textContent));"""
    )


def test_every_environment_once_under_one_id(page):
    envs = _environments(page)
    ids = [r[0] for r in envs]
    labels = dict((r[0], r[1]) for r in envs)
    assert len(ids) == len(set(ids)) >= 5 and len(set(labels.values())) == len(ids)
    baseline = [r[0] for r in envs if r[2] == "baseline"]
    assert len(baseline) == 1
    headings = page.execute_script(
        "return Array.from(document.querySelectorAll('h3')).map(h => h.textContent);"
    )
    stability = [h for h in headings if re.match(r"E\d+: ", h)]
    assert len(stability) == len(set(stability)) == len(ids)
    for h in stability:
        ident, label = h.split(": ", 1)
        assert labels[ident] == label
    figures = {f["id"]: f for f in page.execute_script(DATA_SHARES, DATA_BELOW)}
    assert set(figures["fig-deviation"]["rows"]) | set(baseline) == set(ids)
    assert baseline[0] not in figures["fig-deviation"]["rows"]
    assert set(figures["fig-runtime-1-thread"]["rows"]) == set(ids)


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:[.,]\d+)*(?:e[-+]\d+)?", text)


def test_headline_numbers_equal_the_markdown(page, report):
    shown = page.execute_script("return document.getElementById('headline').innerText;")
    md = (report[0] / "report.md").read_text()
    block = md.split("\n\n", 2)[2].split("\n## Environments")[0]
    assert block.startswith("Of ") and _numbers(shown) == _numbers(block)
    assert len(_numbers(shown)) > 10


UNITS = {"ns": 1e-9, "μs": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float | None:
    m = re.match(r"([\d.]+) (ns|μs|ms|s)\b", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def test_tables_sort_by_the_column_clicked(page):
    header = page.find_element("css selector", "table.environments thead th")
    header.click()
    header.click()  # descending
    ids = [int(r[0][1:]) for r in _environments(page)]
    assert ids == sorted(ids, reverse=True) and len(ids) > 2
    table = page.find_element("css selector", "table.stability")
    column = next(
        i
        for i, th in enumerate(table.find_elements("css selector", "thead th"))
        if th.text.startswith("time 1 thread")
    )
    table.find_elements("css selector", "thead th")[column].click()
    cells = page.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).map(r => r.cells[arguments[1]].textContent);",
        table,
        column,
    )
    times = [_seconds(c) for c in cells]
    numbers = [t for t in times if t is not None]
    assert numbers == sorted(numbers) and len(numbers) > 2
    assert times[: len(numbers)] == numbers  # numbers first, then the blanks
