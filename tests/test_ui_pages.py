"""The dashboard's pages in a real browser: the real app served by uvicorn on a free port, Debian's
Chromium driven by Playwright, the example database of ``trained_runs.py``. Points are read from
the page (``window.runhistoryCharts``), never from a screenshot."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
import trained_runs
from ui_support import chart_points, serving, table_rows, wait_for_charts

from runhistory_sql import RunStore, SQLRunHistory

import playwright  # noqa: F401  (the [test] extra has it: a missing one is a failure, not a skip)
# CI installs Debian's Chromium and sets $RUNHISTORY_SQL_REQUIRE_BROWSER: there a missing one fails
pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/bin/chromium") and not os.environ.get("RUNHISTORY_SQL_REQUIRE_BROWSER"),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="session")
def trained_site(trained_file: Path) -> Iterator[Any]:
    """The dashboard of the trained runs (one server for the session: nothing here writes)."""
    with serving(f"sqlite:///{trained_file}") as served:
        yield served


def expected_points(url: str, run: str, metric: str, stage: int | None = None) -> list[list[Any]]:
    with RunStore(url) as store:
        return [[point[1], point[2]] for point in store.history(run, metric, stage)]  # (epoch, value)


def test_runs_page_lists_the_runs_with_their_statuses(trained_site, page):
    page.goto(trained_site.url("/"))
    page.wait_for_selector("#runs-table tbody tr")

    assert table_rows(page) == [
        ("solo", "finished"), ("resumed", "finished"), ("finetune", "finished"), ("fast", "finished"), ("baseline", "finished")]
    assert page.inner_text("#page-info").strip() == "1–5 of 5 runs"


def test_sorting_by_best_eval_loss_reorders_the_runs(trained_site, page):
    page.goto(trained_site.url("/"))
    page.wait_for_selector("#runs-table tbody tr")

    page.click('th[data-sort="best.eval_loss_epoch"] button')
    page.wait_for_function("document.querySelector('th.sorted') && document.querySelector('th.sorted').dataset.sort === 'best.eval_loss_epoch'")
    page.wait_for_function("document.querySelector('#runs-table tbody tr .col-name').textContent === 'fast'")

    assert [name for name, _ in table_rows(page)] == ["fast", "resumed", "finetune", "baseline", "solo"]
    assert page.eval_on_selector_all("td.col-best_eval_loss_epoch", "cells => cells.map(c => c.textContent)") == [
        "0.109332", "0.761872", "1.02757", "2.83461", "9.03493"]


def test_the_runs_page_pages_through_the_api(trained_site, page):
    page.goto(trained_site.url("/?limit=2"))
    page.wait_for_selector("#runs-table tbody tr")
    first = [name for name, _ in table_rows(page)]

    page.click("#page-next")
    page.wait_for_function("document.querySelector('#page-info').textContent.trim() === '3–4 of 5 runs'")
    second = [name for name, _ in table_rows(page)]
    page.click("#page-next")
    page.wait_for_function("document.querySelector('#page-info').textContent.trim() === '5–5 of 5 runs'")

    assert (first, second) == (["solo", "resumed"], ["finetune", "fast"])
    assert [name for name, _ in table_rows(page)] == ["baseline"]
    assert page.is_disabled("#page-next")


def test_a_page_opened_with_the_token_fetches_its_data_with_it(trained_file, page):
    with serving(f"sqlite:///{trained_file}", token="s3cret") as site:
        refused = page.goto(site.url("/")).status
        page.goto(site.url("/?token=s3cret"))
        page.wait_for_selector("#runs-table tbody tr")
        page.click('#runs-table tr[data-run-id="3"] a.run-link')  # no token in the link: the cookie
        wait_for_charts(page, 2)

        assert refused == 403
        assert page.url == site.url("/runs/3")


def test_the_run_page_draws_one_chart_per_metric_with_its_points_and_markers(trained_site, trained_file, page):
    url = f"sqlite:///{trained_file}"
    page.goto(trained_site.url("/runs/3"))  # finetune: frozen for 2 epochs, then unfrozen
    wait_for_charts(page, 2)

    charts = page.evaluate("Object.keys(window.runhistoryCharts).sort()")
    markers = page.evaluate("window.runhistoryCharts.eval_loss_epoch.markers.map(m => [m.kind, m.x])")

    over = page.evaluate("(() => { const u = window.runhistoryCharts.eval_loss_epoch.uplot, r = u.over.getBoundingClientRect();"
                         " return [r.left + u.valToPos(3, 'x'), r.top + r.height / 2]; })()")
    page.mouse.move(*over)
    tip = page.wait_for_selector('.chart-card[data-metric="eval_loss_epoch"] .marker-tip:not([hidden])').inner_text()
    changed = page.eval_on_selector_all("#run-configs td.changed", "cells => cells.map(c => [c.parentNode.dataset.field, c.textContent])")

    assert charts == ["eval_loss_epoch", "train_loss_epoch"]
    assert tip == "unfreeze (stage 1, epoch 3): unfroze group 0 (288 params); 1377 of 1377 params trainable"
    assert changed == [["num_epochs", "4"], ["max_num_train_steps", "65"]]
    assert chart_points(page, "eval_loss_epoch") == expected_points(url, "finetune", "eval_loss_epoch")
    assert [x for x, _ in chart_points(page, "train_loss_epoch")] == [1, 2, 3, 4, 5]
    assert markers == [["freeze", 1], ["unfreeze", 3]]


def test_the_run_page_marks_a_resume_and_draws_every_stage(trained_site, trained_file, page):
    url = f"sqlite:///{trained_file}"
    page.goto(trained_site.url("/runs/4"))  # resumed
    wait_for_charts(page, 2)
    resumed = page.evaluate("window.runhistoryCharts.train_loss_epoch.markers.map(m => [m.kind, m.x, m.detail])")
    page.goto(trained_site.url("/runs/1"))  # baseline: train, then evaluate() in stage 2
    wait_for_charts(page, 3)

    assert resumed == [["resumed", 3, "from epoch 3 (was finished), on trainer-1 pid 4242"]]
    assert chart_points(page, "evaluation_loss") == expected_points(url, "baseline", "evaluation_loss", 2)
    assert page.evaluate("window.runhistoryCharts.evaluation_loss.data.lines.map(l => l.stage)") == [2]


def test_the_x_axis_switches_to_the_run_wide_seq(trained_site, page):
    page.goto(trained_site.url("/runs/3"))
    wait_for_charts(page, 2)

    page.select_option("#x-mode", "seq")
    page.wait_for_function("window.runhistoryCharts.eval_loss_epoch.xMode === 'seq'")

    seqs = [x for x, _ in chart_points(page, "eval_loss_epoch")]
    seq_markers = page.evaluate("window.runhistoryCharts.eval_loss_epoch.markers.map(m => [m.kind, m.x])")
    page.select_option("#x-mode", "time")
    page.wait_for_function("window.runhistoryCharts.eval_loss_epoch.xMode === 'time'")
    times = [x for x, _ in chart_points(page, "eval_loss_epoch")]
    page.select_option("#x-mode", "step")
    page.wait_for_function("Object.keys(window.runhistoryCharts).length === 0")

    assert seqs == [0, 1, 2, 3, 4]
    assert seq_markers == [["freeze", 0], ["unfreeze", 2]]
    assert times == [trained_runs.BASE_MS + 2 * trained_runs.HOUR_MS + 1000 * k for k in range(5)]  # run 3: point k at k s
    assert page.inner_text('.chart-card[data-metric="eval_loss_epoch"] .chart') == "No steps recorded for this metric."


def test_smoothing_draws_a_moving_average_over_a_faint_raw_line_and_log_scale_is_a_log_axis(trained_site, trained_file, page):
    values = [v for _, v in expected_points(f"sqlite:///{trained_file}", "finetune", "eval_loss_epoch")]
    last, smoothed = 0.0, []
    for i, v in enumerate(values):  # TensorBoard's debiased EMA
        last = last * 0.6 + 0.4 * v
        smoothed.append(last / (1 - 0.6 ** (i + 1)))
    page.goto(trained_site.url("/runs/3"))
    wait_for_charts(page, 2)

    page.locator("#smoothing").fill("0.6")
    page.wait_for_function("window.runhistoryCharts.eval_loss_epoch.drawn.length === 2")
    drawn = page.evaluate("window.runhistoryCharts.eval_loss_epoch.drawn.map(d => d.kind)")
    plotted = page.evaluate("window.runhistoryCharts.eval_loss_epoch.uplot.data.slice(1)")
    page.check("#log-scale")
    page.wait_for_function("window.runhistoryCharts.eval_loss_epoch.uplot.scales.y.distr === 3")

    assert drawn == ["raw", "smooth"]
    assert plotted[0] == values
    assert plotted[1] == pytest.approx(smoothed, rel=1e-12)


@pytest.fixture
def rewound(db_url: str) -> str:
    """A run of 3 epochs resumed from epoch 2: the points of epochs 2 and 3 are superseded."""
    with SQLRunHistory(db_url, experiment="exp", run_name="rewound") as h:
        for epoch in (1, 2, 3):
            h.update_metric("loss", 10.0 + epoch)
            h._increment_epoch()
    with SQLRunHistory(db_url, experiment="exp", run_name="rewound", resume="must") as h:
        h._set_epoch(2)
        for epoch in (2, 3):
            h.update_metric("loss", 20.0 + epoch)
            h._increment_epoch()
    return db_url


def test_superseded_points_appear_only_with_the_toggle(rewound, page):
    with serving(rewound) as site:
        page.goto(site.url("/runs/1"))
        wait_for_charts(page, 1)
        before = page.evaluate("window.runhistoryCharts.loss.drawn.map(d => [d.stage, d.rev])")
        effective = chart_points(page, "loss")

        page.check("#show-superseded")
        page.wait_for_function("window.runhistoryCharts.loss.drawn.length === 2")

        assert before == [[1, 0]]
        assert effective == [[1, 11.0], [2, 22.0], [3, 23.0]]
        assert chart_points(page, "loss", rev=1) == [[2, 12.0], [3, 13.0]]
        assert page.evaluate("window.runhistoryCharts.loss.markers.map(m => [m.kind, m.x])") == [["resumed", 4], ["rewind", 2]]


def test_zooming_into_a_downsampled_chart_fetches_the_range_at_full_resolution(db_url, page):
    with SQLRunHistory(db_url, experiment="exp", run_name="long") as h:
        for epoch in range(10):
            for step in range(1000):
                h.update_metric("loss", float(epoch * 1000 + step))
            h._increment_epoch()

    with serving(db_url) as site:
        page.goto(site.url("/runs/1"))
        wait_for_charts(page, 1)
        overview = chart_points(page, "loss")
        box = page.locator('.chart-card[data-metric="loss"] .u-over').bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.40, box["y"] + 20)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + 20, steps=5)
        page.mouse.up()
        page.wait_for_selector('.chart-card[data-metric="loss"] .reset-zoom:not([hidden])')
        zoomed = chart_points(page, "loss")

        assert page.get_attribute('.chart-card[data-metric="loss"]', "data-downsampled") == "true"
        assert len(overview) < 10_000
        assert [x for x, _ in overview][:1] == [0] and overview[-1] == [9999, 9999.0]
        xs = [x for x, _ in zoomed]
        assert 3_900 <= xs[0] < xs[-1] <= 4_600  # the dragged range (seq: the x axis of a long history)
        assert zoomed == [[x, float(x)] for x in range(xs[0], xs[-1] + 1)]  # every point in it


def test_compare_shows_exactly_the_config_fields_that_differ(trained_site, trained_file, page):
    url = f"sqlite:///{trained_file}"
    best = [min(v for _, v in expected_points(url, run, "eval_loss_epoch")) for run in ("baseline", "fast")]
    page.goto(trained_site.url("/compare?runs=1,2"))
    page.wait_for_selector("#compare-configs tbody tr")
    wait_for_charts(page, 3)

    fields = page.eval_on_selector_all("#compare-configs tbody tr", "rows => rows.map(r => r.dataset.field)")
    batch = page.eval_on_selector_all('#compare-configs tr[data-field="train_per_device_batch_size"] td', "cells => cells.map(c => c.textContent)")

    assert fields == sorted([
        "train_per_device_batch_size", "train_dl_kwargs.batch_size", "eval_per_device_batch_size", "eval_dl_kwargs.batch_size",
        "train_total_batch_size", "eval_total_batch_size", "num_update_steps_per_epoch", "num_local_update_steps_per_epoch",
        "max_num_train_steps"])
    assert batch == ["train_per_device_batch_size", "32", "16"]
    assert page.evaluate("window.runhistoryCharts.eval_loss_epoch.data.lines.map(l => [l.run, l.x.length])") == [[1, 3], [2, 3]]
    assert page.evaluate("window.runhistoryParcoords.axes.map(a => a.name)") == [  # no params: the first config fields
        "eval_dl_kwargs.batch_size", "eval_per_device_batch_size", "eval_total_batch_size", "max_num_train_steps", "best eval_loss_epoch"]
    assert page.evaluate("window.runhistoryParcoords.lines.map(l => l.values)") == [[32, 32, 32, 49, best[0]], [16, 16, 16, 97, best[1]]]


@pytest.fixture
def sweep(db_url: str) -> str:
    """Three runs of a sweep over lr and model, with a loss and a step-level metric."""
    for name, lr, model, loss, gpus in (("a", 0.1, "small", 3.0, 8), ("b", 0.01, "small", 2.0, 1), ("c", 0.001, "big", 1.0, 4)):
        with SQLRunHistory(db_url, experiment="sweep", run_name=name, tags={"gpus": gpus}) as h:
            h.log_params({"lr": lr, "model": model, "seed": 0})
            h.update_metric("loss", loss)
            h.log_metrics({"acc": 1 / loss}, step=10)
    return db_url


def test_the_runs_page_shows_and_sorts_params(sweep, page):
    with serving(sweep) as site:
        page.goto(site.url("/?cols=param.lr,param.model"))
        page.wait_for_selector("#runs-table tbody tr")
        page.click('th[data-sort="param.lr"] button')
        page.wait_for_function("document.querySelector('#runs-table tbody tr .col-name').textContent === 'c'")
        cells = page.eval_on_selector_all("#runs-table tbody tr", "rows => rows.map(r => [...r.cells].slice(-2).map(c => c.textContent))")

        assert [name for name, _ in table_rows(page)] == ["c", "b", "a"]
        assert cells == [["0.001", "big"], ["0.01", "small"], ["0.1", "small"]]
        assert page.url.endswith("?sort=param.lr&order=asc&metrics=acc%2Closs&cols=param.lr%2Cparam.model")


def test_the_runs_page_sorts_by_a_tag_column(sweep, page):
    with serving(sweep) as site:
        page.goto(site.url("/?cols=tag.gpus"))
        page.wait_for_selector("#runs-table tbody tr")
        page.click('th[data-sort="tag.gpus"] button')
        page.wait_for_function("document.querySelector('#runs-table tbody tr .col-name').textContent === 'b'")
        gpus = page.eval_on_selector_all("#runs-table tbody tr", "rows => rows.map(r => r.cells[r.cells.length - 1].textContent)")

        assert ([name for name, _ in table_rows(page)], gpus) == (["b", "c", "a"], ["1", "4", "8"])


def test_the_runs_page_filters_with_where(sweep, page):
    with serving(sweep) as site:
        page.goto(site.url("/?cols=param.lr,param.model"))
        page.wait_for_selector("#runs-table tbody tr")
        page.fill("#filter-where", "lr<0.05; model=small")
        page.click("form.filters button[type=submit]")
        page.wait_for_function("document.querySelector('#page-info').textContent.trim() === '1–1 of 1 runs'"
                               " || document.querySelector('#runs-error .error')")

        assert page.inner_text("#runs-error") == ""
        assert [name for name, _ in table_rows(page)] == ["b"]
        assert page.url.endswith("?where=lr%3C0.05&where=model%3Dsmall&metrics=acc%2Closs&cols=param.lr%2Cparam.model")


def test_compare_shows_the_params_that_differ_on_parallel_coordinates(sweep, page):
    with serving(sweep) as site:
        page.goto(site.url("/compare?runs=1,2,3"))
        wait_for_charts(page, 2)
        params = page.eval_on_selector_all("#compare-params tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        axes = page.evaluate("window.runhistoryParcoords.axes.map(a => [a.name, a.kind])")
        lines = page.evaluate("window.runhistoryParcoords.lines.map(l => l.values)")

        page.goto(site.url("/runs/1"))
        wait_for_charts(page, 2)
        run_params = page.eval_on_selector_all("#run-params tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")

        assert run_params == [["lr", "0.1", "1"], ["model", "small", "1"], ["seed", "0", "1"]]
        assert params == [["lr", "0.1", "0.01", "0.001"], ["model", "small", "small", "big"]]
        assert axes == [["lr", "number"], ["model", "category"], ["best acc", "number"]]
        assert lines == [[0.1, "small", 1 / 3], [0.01, "small", 0.5], [0.001, "big", 1.0]]


def test_compare_draws_the_steps_of_log_metrics(sweep, page):
    with serving(sweep) as site:
        page.goto(site.url("/compare?runs=1,2,3"))
        wait_for_charts(page, 2)
        page.select_option("#x-mode", "step")
        page.wait_for_function("window.runhistoryCharts.acc && window.runhistoryCharts.acc.xMode === 'step'")

        assert page.evaluate("window.runhistoryCharts.acc.data.lines.map(l => [l.run, l.x, l.y])") == [
            [1, [10], [1 / 3]], [2, [10], [0.5]], [3, [10], [1.0]]]
        assert page.evaluate("Object.keys(window.runhistoryCharts).sort()") == ["acc"]  # loss has no steps


def test_a_run_named_like_html_renders_as_text_and_opens_no_dialog(db_url, page):
    with SQLRunHistory(db_url, experiment=EVIL, run_name=EVIL, tags={EVIL: EVIL}) as h:
        h.update_metric(EVIL, 1.0)
        h.log_event(EVIL, note=EVIL)

    with serving(db_url) as site:
        page.goto(site.url("/?cols=tag." + EVIL))
        page.wait_for_selector("#runs-table tbody tr")
        listed = page.inner_text("#runs-table tbody .col-name")
        tag = page.inner_text("#runs-table tbody td:last-child")
        page.goto(site.url("/runs/1"))
        wait_for_charts(page, 1)
        heading = page.inner_text("#run-header .run-name")
        kinds = page.eval_on_selector_all("#run-events li .kind", "els => els.map(e => e.textContent)")

        assert listed == EVIL
        assert heading == EVIL
        assert page.evaluate("Object.keys(window.runhistoryCharts)") == [EVIL]
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        assert page.dialogs == []
        assert tag == EVIL
        assert EVIL in kinds


def test_the_report_file_opens_offline_with_the_same_points(trained_file, tmp_path, browser):
    from runhistory_sql.ui.report import write_report

    url = f"sqlite:///{trained_file}"
    one = write_report(url, ["finetune"], tmp_path / "finetune.html")
    two = write_report(url, ["baseline", "fast"], tmp_path / "compare.html")
    context = browser.new_context(offline=True)
    fetched: list[str] = []
    context.route("http*://**", lambda route: (fetched.append(route.request.url), route.abort()))
    page = context.new_page()
    try:
        page.goto(one.as_uri())
        wait_for_charts(page, 2)
        points = chart_points(page, "eval_loss_epoch")
        markers = page.evaluate("window.runhistoryCharts.eval_loss_epoch.markers.map(m => [m.kind, m.x])")
        page.goto(two.as_uri())
        wait_for_charts(page, 3)
        compared = page.evaluate("window.runhistoryCharts.eval_loss_epoch.data.lines.map(l => l.run)")
        links = page.evaluate("document.querySelectorAll('a[href]').length")  # nowhere to go offline
    finally:
        context.close()

    assert points == expected_points(url, "finetune", "eval_loss_epoch")
    assert markers == [["freeze", 1], ["unfreeze", 3]]
    assert compared == [1, 2]
    assert links == 0
    assert fetched == []


def test_a_report_of_names_like_html_holds_them_as_text(db_url, tmp_path, page):
    from runhistory_sql.ui.report import write_report

    name = "</script>" + EVIL
    with SQLRunHistory(db_url, experiment=name, run_name=name) as h:
        h.update_metric(name, 1.0)
        h.log_event(name, note=name)
    report = write_report(db_url, [name], tmp_path / "evil.html")

    page.goto(report.as_uri())
    wait_for_charts(page, 1)

    assert page.inner_text("#run-header .run-name") == name
    assert page.evaluate("Object.keys(window.runhistoryCharts)") == [name]
    assert chart_points(page, name) == [[1, 1.0]]
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.dialogs == []
