"""The UI in a real headless Chromium, over a store with runs of both loop drivers.

Screenshots of each page are written to the test's temporary directory; with
``TRAINFORGE_UPDATE_SCREENSHOTS=1`` they also replace ``docs/images/ui-*.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from trainforge.tracking import ExperimentDB, ModelRegistry, TrackingStore

from .conftest import serve

XSS = "<img src=x onerror=alert(1)>"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _train(tmp: Path, engine: str) -> None:
    from trainforge.config import load_config
    from trainforge.train import Trainer

    config = load_config(
        template="digits",
        cli=[
            f"trainer.engine={engine}",
            f"run.name={engine}-run",
            f"optim.lr={0.01 if engine == 'lightning' else 0.002}",
            f"run.output_dir={tmp / 'outputs'}",
            f"tracking.database=sqlite:///{tmp / 'ui.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=2",
            "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=1",
            "loggers.tensorboard.enabled=true",
        ],
        environ={},
    )
    Trainer(
        training_config=config, command=["trainforge", "train", f"trainer.engine={engine}"]
    ).train()


@pytest.fixture(scope="module")
def site(tmp_path_factory, chromium):
    """Two trained runs (Lightning and plain), a run named like HTML, a model; served."""
    tmp = tmp_path_factory.mktemp("ui")
    _train(tmp, "lightning")
    _train(tmp, "plain")
    store = TrackingStore(f"sqlite:///{tmp / 'ui.db'}")
    db = ExperimentDB(store)
    evil = db.log_run(XSS, {"optim": {"lr": 0.5}}, tags={"note": XSS})
    for step in range(20):
        db.log_metric(evil, "train/loss", 2.0 - step / 20, step=step)
    db.update_run_status(evil, "failed")
    ModelRegistry(store).register_model("digits-mlp", checkpoint_path="x", training_run_id=1)
    with serve(store) as served:
        served.db = db
        served.shots = tmp / "shots"
        yield served
    store.dispose()


@pytest.fixture
def page(site, chromium):
    """A fresh page that records dialogs, page errors and console errors."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.problems = []
    tab.on("dialog", lambda d: (tab.problems.append(f"dialog: {d.message}"), d.dismiss()))
    tab.on("pageerror", lambda e: tab.problems.append(f"pageerror: {e}"))
    tab.on("console", lambda m: m.type == "error" and tab.problems.append(f"console: {m.text}"))
    yield tab
    context.close()


def _shot(site, tab, name: str) -> None:
    site.shots.mkdir(exist_ok=True)
    path = site.shots / f"ui-{name}.png"
    tab.screenshot(path=str(path))
    if os.environ.get("TRAINFORGE_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)


def _row(tab, run_id: int):
    return tab.locator(f'.trow[data-run-id="{run_id}"]')


def test_runs_table_shows_both_drivers_and_html_names_as_text(site, page):
    page.goto(site.base + "/")
    page.wait_for_selector(".trow")
    names = page.locator('.trow [data-col="name"]').all_inner_texts()
    assert {"lightning-run", "plain-run", XSS} <= set(names)
    assert page.locator("#run-count").inner_text() == "3 runs"
    assert page.locator("main img").count() == 0  # the name stayed text
    assert XSS in page.locator('.trow [data-col="tags"]').all_inner_texts()[0].replace("note=", "")
    assert page.locator('.trow [data-status="failed"]').count() == 1
    _shot(site, page, "runs")
    assert page.problems == []


def test_filter_errors_show_a_caret_and_the_view_survives_a_reload(site, page):
    page.goto(site.base + "/")
    page.fill("input.filter", "metrics.val/acc >")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('filter-error').textContent.includes('^')"
    )
    error = page.locator("#filter-error").inner_text().splitlines()
    assert error[1] == "metrics.val/acc >" and error[2] == " " * 17 + "^"
    page.fill("input.filter", "metrics.val/acc > 0")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('run-count').textContent === '2 runs'")
    page.click('.thead [data-sort="attributes.name"]')  # ascending
    page.wait_for_function(
        "() => document.querySelector('.trow [data-col=name]').textContent === 'lightning-run'"
    )
    page.reload()
    page.wait_for_selector(".trow")
    assert page.input_value("input.filter") == "metrics.val/acc > 0"
    assert page.locator('.trow [data-col="name"]').all_inner_texts() == [
        "lightning-run",
        "plain-run",
    ]
    assert "▲" in page.locator('.thead [data-sort="attributes.name"]').inner_text()


def test_selecting_runs_and_comparing_draws_every_point_the_api_returns(site, page):
    page.goto(site.base + "/?metrics=val/loss")
    page.wait_for_selector(".trow")
    for run_id in (1, 2):
        _row(page, run_id).locator('input[type="checkbox"]').check()
    page.click("#compare")
    page.wait_for_selector('#compare-chart[data-drawn="yes"] canvas')
    chart = page.locator("#compare-chart")
    assert page.url.startswith(site.base + "/compare?runs=")
    drawn = int(chart.get_attribute("data-points"))
    api = site.json(chart.get_attribute("data-url"))
    assert drawn == len(api["x"]) > 0 and chart.get_attribute("data-series") == "2"
    uplot_lengths = page.evaluate("document.querySelector('#compare-chart canvas') !== null")
    assert uplot_lengths
    assert page.locator("#compare-params tr[data-key]").count() >= 1  # trainer.engine differs
    assert page.locator("#parallel").get_attribute("data-lines") == "2"
    _shot(site, page, "compare")
    assert page.problems == []


def test_compare_state_lives_in_the_url(site, page):
    url = "/compare?runs=1,2,3&metric=train/loss&x=time&smooth=0.6&log=1&diff=0"
    page.goto(site.base + url)
    page.wait_for_selector('#compare-chart[data-drawn="yes"]')
    page.reload()
    page.wait_for_selector('#compare-chart[data-drawn="yes"]')
    assert page.input_value("#metric") == "train/loss"
    assert page.input_value("#x-axis") == "time"
    assert page.input_value("#smoothing") == "0.6"
    assert page.is_checked("#log-scale") and not page.is_checked("#only-differ")
    # a drag-zoom goes into the URL too, and the chart asks the server for that range
    box = page.locator("#compare-chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 50, steps=5)
    page.mouse.up()
    page.wait_for_function("() => new URLSearchParams(location.search).has('xmin')")
    page.wait_for_function(
        "() => document.querySelector('#compare-chart').dataset.url.includes('lo=')"
    )
    assert page.problems == []


def test_run_page_shows_params_provenance_checkpoints_and_files(site, page):
    page.goto(site.base + "/runs/1")
    page.wait_for_selector("#run-params")
    assert page.locator("#run-title").inner_text().startswith("lightning-run")
    row = page.locator("#run-params tr", has_text="trainer.max_epochs")
    assert "(cli)" in row.inner_text()
    assert page.locator("#run-command").inner_text() == "trainforge train trainer.engine=lightning"
    assert "tensorboard --logdir" in page.locator("#run-folders").inner_text()
    page.wait_for_selector('#run-charts .chart[data-drawn="yes"] canvas')
    _shot(site, page, "run")
    assert "not checked" in page.locator("#run-checkpoints").inner_text()
    page.click("#verify")
    page.locator("#verify").wait_for(state="detached")  # the verified table replaced it
    verified = page.locator("#run-checkpoints td.verified").all_inner_texts()
    assert verified and all(v == "ok" for v in verified)
    assert "matches" in page.locator("#run-checkpoints").inner_text()
    page.wait_for_selector('#run-charts .chart[data-drawn="yes"] canvas')
    href = page.locator("#run-metrics a", has_text="CSV").first.get_attribute("href")
    assert href.startswith("/api/points?run=1&key=")
    assert page.problems == []


def test_registry_page_lists_models_and_lineage(site, page):
    page.goto(site.base + "/registry")
    page.wait_for_selector('table[data-model="digits-mlp"]')
    page.click('table[data-model="digits-mlp"] button')
    page.wait_for_selector("#lineage li")
    assert "run 1 lightning-run" in page.locator("#lineage").inner_text()
    assert page.problems == []


def test_a_run_started_during_the_test_appears_without_a_reload(site, page):
    page.goto(site.base + "/")
    page.wait_for_selector(".trow")
    before = page.evaluate("performance.getEntriesByType('navigation').length")
    started = site.db.log_run("started-while-watching")
    site.db.log_metric(started, "val/loss", 0.25, step=0)
    page.wait_for_selector(f'.trow[data-run-id="{started}"]', timeout=20_000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == before
    row = _row(page, started)
    assert row.locator('[data-status="running"]').count() == 1
    site.db.update_run_status(started, "completed")
    row.locator('[data-status="completed"]').wait_for(timeout=20_000)


def test_dark_mode_follows_the_os(site, chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    tab = context.new_page()
    tab.goto(site.base + "/compare?runs=1,2&metric=val/loss")
    tab.wait_for_selector('#compare-chart[data-drawn="yes"]')
    background = tab.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    time.sleep(0)  # nothing to wait for: the colours come from the stylesheet
    _shot(site, tab, "compare-dark")
    context.close()
