// The run page: header, one chart per metric across stages, params, configs, events, summaries.
// While the run is running its lines grow: every second each metric asks only for the points
// recorded after the cursor of its previous answer.
"use strict";

(function () {
  const R = window.runhistory;
  const {api, qs, el, clear, fmtValue, fmtTime, fmtDuration, fmtNumber, badge, PALETTE} = R;

  function historyPath(runId, metric, x, extra) {
    return `/api/runs/${runId}/history` + qs({metric, x, superseded: 1, ...(extra || {})});
  }

  function runIdFromPage() {
    const embed = R.embedded();
    if (embed) return embed.run_id;
    const m = location.pathname.match(/\/runs\/(\d+)/);
    return m ? Number(m[1]) : Number(document.body.dataset.runId);
  }

  function field(label, value) {
    return el("div", {class: "field"}, el("span", {class: "label"}, label), el("span", {class: "value"}, value));
  }

  function renderHeader(box, run) {
    clear(box).appendChild(el("h1", {}, el("span", {class: "crumb"}, run.experiment, " / "), el("span", {class: "run-name"}, run.name), " ", badge(run.status)));
    box.appendChild(el("div", {class: "fields"},
      field("experiment", run.experiment), field("status", run.status), field("host", run.host || ""),
      field("pid", run.pid === null ? "" : String(run.pid)), field("started", fmtTime(run.created_at)),
      field("ended", fmtTime(run.ended_at)), field("duration", fmtDuration(run.duration_s)),
      field("stages", String(run.num_stages)), field("epoch", String(run.current_epoch ?? "")),
      field("uuid", run.uuid || ""),
      field("tags", Object.entries(run.tags || {}).map(([k, v]) => `${k}=${fmtValue(v)}`).join("  "))));
  }

  function renderParams(box, report) {
    const changes = {};
    for (const p of report.param_history || []) changes[p.key] = (changes[p.key] || 0) + 1;
    const keys = Object.keys(report.params || {}).sort();
    clear(box).appendChild(el("h2", {}, "Params"));
    if (!keys.length) { box.appendChild(el("p", {class: "muted"}, "No params logged.")); return; }
    box.appendChild(R.table(["key", "value", "times logged"], keys.map(k =>
      el("tr", {}, el("td", {}, k), el("td", {}, fmtValue(report.params[k])), el("td", {class: "num"}, String(changes[k] || 1))))));
  }

  function renderConfigs(box, configs) {
    clear(box).appendChild(el("h2", {}, "Config snapshots"));
    if (!configs.length) { box.appendChild(el("p", {class: "muted"}, "No config snapshots.")); return; }
    const names = [];
    for (const c of configs) for (const f of Object.keys(c.fields)) if (!names.includes(f)) names.push(f);
    const head = [el("th", {}, "field"), ...configs.map(c => el("th", {}, `stage ${c.stage} ${c.kind}`, el("br"), el("small", {}, fmtTime(c.captured_at))))];
    box.appendChild(R.table(head, names.map(f => el("tr", {dataset: {field: f}}, el("td", {class: "key"}, f),
      configs.map(c => el("td", {class: (c.changed || []).includes(f) ? "changed" : null, title: (c.changed || []).includes(f) ? "changed from the previous snapshot" : null},
        f in c.fields ? fmtValue(c.fields[f]) : "")))), {class: "grid configs"}));
  }

  function renderEvents(box, events) {
    clear(box).appendChild(el("h2", {}, "Events"));
    box.appendChild(el("ol", {class: "timeline"}, events.map(e => el("li", {class: "event", dataset: {kind: e.kind}},
      el("span", {class: "dot", style: `background:${R.MARKER_KINDS[e.kind] || "#999"}`}),
      el("span", {class: "when"}, fmtTime(e.recorded_at)), el("span", {class: "where"}, `stage ${e.stage} · epoch ${e.epoch}`),
      el("span", {class: "kind"}, e.kind), el("span", {class: "detail"}, R.describeEvent(e.kind, e.payload))))));
  }

  function renderSummaries(box, summaries) {
    clear(box).appendChild(el("h2", {}, "Summary"));
    // where the best was: its step for a plain loop's points (all in epoch 1), else its epoch
    const at = s => s.best_step != null ? `step ${s.best_step}` : s.best_epoch != null ? `epoch ${s.best_epoch}` : "";
    box.appendChild(R.table(["metric", "stage", "points", "last", "best", "best at", "min", "max"], summaries.map(s => el("tr", {},
      el("td", {}, s.metric), el("td", {class: "num"}, String(s.stage)), el("td", {class: "num"}, String(s.n_points)),
      el("td", {class: "num"}, fmtNumber(s.last)), el("td", {class: "num"}, fmtNumber(s.best)), el("td", {}, at(s)),
      ...[s.min, s.max].map(v => el("td", {class: "num"}, fmtNumber(v)))))));
  }

  function seriesKey(s) { return s.stage + ":" + s.rev; }

  /** Append the points of a live answer to the series held so far. */
  function mergeSeries(held, fresh) {
    for (const s of fresh) {
      const mine = held.find(h => seriesKey(h) === seriesKey(s));
      if (!mine) { held.push(s); continue; }
      mine.x.push(...s.x); mine.y.push(...s.y); mine.seq.push(...s.seq);
    }
    held.sort((a, b) => a.stage - b.stage || a.rev - b.rev);
  }

  class RunPage {
    constructor(runId) {
      this.runId = runId;
      this.state = {x: "epoch", log: false, smoothing: 0, superseded: false};
      this.histories = {};   // metric -> last answer of /history (series merged with live points)
      this.epochs = {};      // metric -> series at x=epoch, to place event markers on other axes
      this.zoomed = {};      // metric -> series of a zoomed range
    }

    async start() {
      this.report = await api(`/api/runs/${this.runId}`);
      this.metrics = [...new Set(this.report.summaries.map(s => s.metric))];
      document.title = `${this.report.run.name} · runhistory-sql`;
      this.state.x = this.defaultX();
      this.renderStatic();
      this.buildControls();
      await this.loadAll();
      window.runhistoryReady = performance.now();  // the first charts are drawn (benchmarks read it)
      if (R.isLive() && this.report.run.status === "running") this.stopLive = R.every(1000, () => this.poll());
    }

    /** Epochs when every metric has about one point per epoch; else the run-wide position. */
    defaultX() {
      const epochs = Math.max(1, this.report.run.current_epoch || 1, ...this.report.events.map(e => e.epoch || 0));
      return this.report.summaries.some(s => s.n_points > epochs + 1) ? "seq" : "epoch";
    }

    renderStatic() {
      renderHeader(document.getElementById("run-header"), this.report.run);
      renderParams(document.getElementById("run-params"), this.report);
      renderConfigs(document.getElementById("run-configs"), this.report.configs);
      renderEvents(document.getElementById("run-events"), this.report.events);
      renderSummaries(document.getElementById("run-summaries"), this.report.summaries);
    }

    buildControls() {
      const box = clear(document.getElementById("run-controls"));
      const xs = el("select", {id: "x-mode", onchange: e => { this.state.x = e.target.value; this.loadAll(); }},
        ["epoch", "step", "seq", "time"].map(x => el("option", {value: x, selected: x === this.state.x}, x)));
      const log = el("input", {type: "checkbox", id: "log-scale", onchange: e => { this.state.log = e.target.checked; this.drawAll(); }});
      const smooth = el("input", {type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01, value: 0});
      const shown = el("output", {id: "smoothing-value"}, "0");
      smooth.addEventListener("input", () => { this.state.smoothing = Number(smooth.value); shown.textContent = smooth.value; this.drawAll(); });
      const sup = el("input", {type: "checkbox", id: "show-superseded", onchange: e => { this.state.superseded = e.target.checked; this.drawAll(); }});
      const kinds = [...new Set(this.report.events.map(e => e.kind).filter(k => k in R.MARKER_KINDS))];
      box.append(el("label", {}, "x axis ", xs), el("label", {}, log, " log scale"),
        el("label", {}, "smoothing ", smooth, " ", shown), el("label", {}, sup, " superseded points (rewinds)"),
        kinds.length ? el("span", {class: "marker-legend"}, "markers (hover for detail): ", kinds.map(k =>
          el("span", {class: "marker-key"}, el("span", {class: "marker-line", style: `border-color:${R.MARKER_KINDS[k]}`}), k))) : "");
    }

    chartBox(metric) {
      const charts = document.getElementById("run-charts");
      let box = charts.querySelector(`[data-metric="${CSS.escape(metric)}"]`);
      if (!box) {
        box = el("div", {class: "chart-card", dataset: {metric}},
          el("div", {class: "chart-head"}, el("h3", {}, metric),
            el("button", {class: "reset-zoom", hidden: true, onclick: () => { delete this.zoomed[metric]; this.draw(metric); }}, "reset zoom")),
          el("div", {class: "chart"}));
        charts.appendChild(box);
      }
      return box;
    }

    async loadAll() {
      this.zoomed = {};
      await Promise.all(this.metrics.map(m => this.load(m)));
    }

    async load(metric) {
      const x = this.state.x;
      const [answer, epochs] = await Promise.all([
        api(historyPath(this.runId, metric, x)),
        x !== "epoch" && this.hasMarkers() && !this.epochs[metric] ? api(historyPath(this.runId, metric, "epoch")) : null]);
      if (epochs) this.epochs[metric] = epochs.series;
      if (x === "epoch") this.epochs[metric] = answer.series;
      if (x !== this.state.x) return;  // the axis changed while this was on its way
      this.histories[metric] = answer;
      this.draw(metric);
    }

    hasMarkers() { return this.report.events.some(e => e.kind in R.MARKER_KINDS); }

    markerX(metric, event, series) {
      if (this.state.x === "epoch") return event.epoch;
      const base = (this.epochs[metric] || []).find(s => s.stage === event.stage && s.rev === 0);
      const here = series.find(s => s.stage === event.stage && s.rev === 0);
      if (!base || !here || !here.x.length) return null;
      const i = base.x.findIndex(e => e >= event.epoch);
      const seq = i < 0 ? base.seq[base.seq.length - 1] + 1 : base.seq[i];
      const j = here.seq.findIndex(s => s >= seq);
      return j < 0 ? here.x[here.x.length - 1] : here.x[j];
    }

    markers(metric, series) {
      const stages = new Set(series.filter(s => s.rev === 0 && s.x.length).map(s => s.stage));
      return this.report.events.filter(e => e.kind in R.MARKER_KINDS && stages.has(e.stage)).map(e => ({
        kind: e.kind, stage: e.stage, epoch: e.epoch, x: this.markerX(metric, e, series),
        where: `stage ${e.stage}, epoch ${e.epoch}`, detail: R.describeEvent(e.kind, e.payload),
      })).filter(m => m.x !== null && m.x !== undefined);
    }

    lines(series) {
      return series.filter(s => s.rev === 0 || this.state.superseded).map(s => ({
        label: s.rev === 0 ? `stage ${s.stage}` : `stage ${s.stage} superseded (rewind ${s.rev})`,
        color: PALETTE[(s.stage - 1) % PALETTE.length], stage: s.stage, rev: s.rev,
        faint: s.rev > 0, dash: s.rev > 0 ? [4, 4] : undefined, x: s.x, y: s.y,
      }));
    }

    drawAll() { for (const m of this.metrics) if (this.histories[m]) this.draw(m); }

    draw(metric) {
      const box = this.chartBox(metric);
      const answer = this.histories[metric];
      const series = this.zoomed[metric] || answer.series;
      box.querySelector(".reset-zoom").hidden = !this.zoomed[metric];
      box.dataset.downsampled = String(answer.downsampled);
      const target = box.querySelector(".chart");
      const lines = this.lines(series).filter(l => l.x.length);
      if (!lines.length) {
        if (window.runhistoryCharts[metric]) { window.runhistoryCharts[metric].uplot.destroy(); delete window.runhistoryCharts[metric]; }
        clear(target).appendChild(el("p", {class: "muted"}, this.state.x === "step" ? "No steps recorded for this metric." : "No points."));
        return;
      }
      R.drawChart(target, {
        key: metric, metric, title: "", xMode: this.state.x, log: this.state.log, smoothing: this.state.smoothing,
        lines, markers: this.markers(metric, series),
        onZoom: R.isLive() && answer.downsampled ? (lo, hi) => this.zoom(metric, lo, hi) : null,
      });
    }

    async zoom(metric, start, end) {
      const answer = await api(historyPath(this.runId, metric, this.state.x, {start: Math.floor(start), end: Math.ceil(end)}));
      this.zoomed[metric] = answer.series;
      this.draw(metric);
    }

    async poll() {
      const fresh = await api(`/api/runs/${this.runId}`);
      const changed = JSON.stringify(fresh) !== JSON.stringify(this.report);
      this.report = fresh;
      this.metrics = [...new Set([...this.metrics, ...fresh.summaries.map(s => s.metric)])];
      if (changed) this.renderStatic();
      await Promise.all(this.metrics.map(m => this.grow(m)));
      if (fresh.run.status !== "running" && this.stopLive) this.stopLive();
    }

    async grow(metric) {
      const held = this.histories[metric];
      if (!held) return this.load(metric);
      const x = this.state.x;
      const answer = await api(historyPath(this.runId, metric, x, {after: held.cursor}));
      if (x !== this.state.x || this.histories[metric] !== held) return;
      held.cursor = answer.cursor;
      if (answer.reset) {  // the history changed under the cursor (a rewind): this is all of it
        held.series = answer.series; held.downsampled = answer.downsampled;
      } else {
        if (!answer.series.some(s => s.x.length)) return;
        mergeSeries(held.series, answer.series);
      }
      if (x === "epoch") this.epochs[metric] = held.series;
      this.draw(metric);
    }
  }

  R.pages = R.pages || {};
  R.pages.run = async () => { R.runPage = new RunPage(runIdFromPage()); await R.runPage.start(); };
  R.historyPath = historyPath;
})();
