"""Both HTML pages in a real browser: headless Chromium (Debian's chromium + chromium-driver) via Selenium.

The page must load with no console error, show the rows and images the data says it should (counted
here from predictions.npz and audit.csv, not from the HTML), filter by level with its script, and
render something: a screenshot with real pixel variance.
"""
from __future__ import annotations

import collections
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1280,1600")

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
    reason=f"headless browser test needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER} "
           "missing): apt-get install chromium chromium-driver (.ci/run does)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (the 'browser' extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A tiny trained run (synthetic 60 images, 32 px, 1 epoch) evaluated on its test split."""
    from fashion_hier.config import TrainConfig
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.evaluate import evaluate_run
    from fashion_hier.train import train

    root = tmp_path_factory.mktemp("report")
    labels_csv = make_synthetic_catalog(root / "catalog", n=60, image_size=32, seed=0)
    config = TrainConfig.from_dict({
        "data": {"labels_csv": str(labels_csv), "image_dir": str(labels_csv.parent / "images"),
                 "image_size": [32, 32], "augment": False},
        "model": {"backbone": "small_cnn", "weights": None, "units": 16},
        "training": {"epochs": 1, "batch_size": 16, "jit_compile": False, "run_eagerly": True},
        "output_dir": str(root / "runs"), "name": "tiny",
    })
    run_dir = train(config)
    evaluate_run(run_dir, out_dir=run_dir / "eval", batch_size=16, progress=False)
    return run_dir, run_dir / "eval", labels_csv


def open_page(driver, path: Path):
    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == [], f"console errors in {path.name}: {errors}"


def assert_screenshot_not_blank(driver):
    from PIL import Image

    with Image.open(io.BytesIO(driver.get_screenshot_as_png())) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10, f"screenshot looks blank (pixel std {pixels.std():.1f})"


def count(driver, selector: str) -> int:
    return int(driver.execute_script(f"return document.querySelectorAll({selector!r}).length"))


def test_report_html_in_a_browser(browser, evaluated_run):
    from fashion_hier.report import CONFUSIONS_SHOWN, EXAMPLES_PER_CONFUSION
    from fashion_hier.rundir import RunDir

    _, out_dir, _ = evaluated_run
    report = RunDir(out_dir)
    with np.load(report.predictions) as saved:
        true, predicted = saved["subcategory_true"], saved["subcategory_score"].argmax(axis=1)
    pairs = collections.Counter((t, p) for t, p in zip(true, predicted) if t != p)
    worst = pairs.most_common(CONFUSIONS_SHOWN)
    thumbnails = sum(min(n, EXAMPLES_PER_CONFUSION) for _, n in worst)
    plot_files = sorted(report.plots.glob("*.png"))

    open_page(browser, report.report_html)
    assert count(browser, "#metrics tbody tr") == 3  # category, subcategory, attributes
    assert count(browser, "#hierarchy tbody tr") == 2
    assert count(browser, "#calibration tbody tr") == 3 and count(browser, "#coverage tbody tr") == 2
    assert count(browser, "#hierarchical tbody tr") == 2  # micro and macro
    assert count(browser, "figure img") == len(plot_files) == 7  # 4 + two reliability diagrams + accuracy-coverage
    assert count(browser, "#confusions tbody tr") == len(worst)
    assert count(browser, "#confusions img") == thumbnails
    loaded = browser.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert loaded, "an embedded image did not decode"
    assert_screenshot_not_blank(browser)


def test_audit_html_in_a_browser(browser, evaluated_run, tmp_path):
    from fashion_hier.audit import AUDIT_CSV, AUDIT_HTML, AuditSource, HeadSettings, audit_catalog

    run_dir, _, _ = evaluated_run
    source = AuditSource.from_run(run_dir)
    audit_catalog(source, tmp_path, settings=HeadSettings(folds=3, components=16), gallery_size=25, progress=False,
                  allow_untrained_backbone=True)  # the tiny run's backbone is random: refused without it
    flagged = pd.read_csv(tmp_path / AUDIT_CSV, dtype=str)
    shown = flagged.assign(score=flagged["score"].astype(float)).sort_values("score", kind="stable").head(25)
    assert len(shown) > 0, "a randomly initialised backbone should disagree with some labels"

    open_page(browser, tmp_path / AUDIT_HTML)
    assert count(browser, ".card") == len(shown)
    assert count(browser, ".card img") == len(shown)
    visible = "return Array.from(document.querySelectorAll('.card')).filter(c => c.offsetParent !== null).length"
    from selenium.webdriver.support.ui import Select

    for level, expected in shown["level"].value_counts().items():
        Select(browser.find_element("id", "level-filter")).select_by_value(level)
        assert browser.execute_script(visible) == expected
        assert browser.find_element("id", "shown-count").text == str(expected)
    Select(browser.find_element("id", "level-filter")).select_by_value("all")
    assert browser.execute_script(visible) == len(shown)
    assert_screenshot_not_blank(browser)
