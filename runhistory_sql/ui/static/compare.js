// The compare page: 2 to 20 runs overlaid metric by metric (one colour per run), the params and
// config fields that differ, last/best side by side, and a parallel-coordinates view.
"use strict";

(function () {
  const R = window.runhistory;
  const {api, qs, el, clear, fmtNumber, fmtValue, badge, PALETTE} = R;

  function runIdsFromPage() {
    const embed = R.embedded();
    if (embed) return embed.runs;
    return (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean).map(Number);
  }

  function diffTable(title, id, rows, runs) {
    const keys = Object.keys(rows).sort();
    const box = el("section", {id, class: "card"}, el("h2", {}, title));
    if (!keys.length) { box.appendChild(el("p", {class: "muted"}, "No differences.")); return box; }
    box.appendChild(R.table([el("th", {}, "field"), ...runs.map(r => el("th", {}, r.name))],
      keys.map(k => el("tr", {dataset: {field: k}}, el("td", {class: "key"}, k),
        runs.map(r => el("td", {}, String(r.id) in rows[k] ? fmtValue(rows[k][String(r.id)]) : "—"))))));
    return box;
  }

  function metricsTable(metrics, runs) {
    const box = el("section", {id: "compare-metrics", class: "card"}, el("h2", {}, "Last / best"));
    const head = [el("th", {}, "metric"), ...runs.flatMap(r => [el("th", {}, r.name + " last"), el("th", {}, r.name + " best")])];
    box.appendChild(R.table(head, Object.keys(metrics).sort().map(m => el("tr", {dataset: {metric: m}}, el("td", {}, m),
      runs.flatMap(r => { const v = metrics[m][String(r.id)] || {}; return [el("td", {class: "num"}, fmtNumber(v.last)), el("td", {class: "num best"}, fmtNumber(v.best))]; })))));
    return box;
  }

  /** Parallel coordinates on a canvas: one vertical axis per differing param and one for the best
   *  of a metric; one polyline per run in its colour. Numbers on a linear axis, anything else
   *  on an axis of its distinct values. */
  function drawParcoords(canvas, axes, runs, colors) {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 800, h = 300;
    canvas.width = w * dpr; canvas.height = h * dpr; canvas.style.height = h + "px";
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr); ctx.clearRect(0, 0, w, h);
    const top = 40, bottom = h - 30, left = 100, right = w - 100;
    const xOf = i => axes.length === 1 ? (left + right) / 2 : left + (right - left) * i / (axes.length - 1);
    const scaled = axes.map(axis => {
      const vals = runs.map(r => axis.values[String(r.id)]).filter(v => v !== undefined && v !== null);
      const numeric = vals.length && vals.every(v => typeof v === "number" && isFinite(v));
      if (numeric) {
        const lo = Math.min(...vals), hi = Math.max(...vals);
        return {...axis, kind: "number", lo, hi, pos: v => typeof v === "number" && isFinite(v) ? bottom - (hi === lo ? 0.5 : (v - lo) / (hi - lo)) * (bottom - top) : null};
      }
      const cats = [...new Set(vals.map(v => fmtValue(v)))].sort();
      return {...axis, kind: "category", cats, pos: v => v === undefined || v === null ? null : bottom - (cats.length === 1 ? 0.5 : cats.indexOf(fmtValue(v)) / (cats.length - 1)) * (bottom - top)};
    });
    ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.fillStyle = "#333"; ctx.strokeStyle = "#999";
    scaled.forEach((a, i) => {
      const x = xOf(i);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillText(a.name, x, top - 22);
      if (a.kind === "number") { ctx.fillText(fmtNumber(a.hi), x, top - 8); ctx.fillText(fmtNumber(a.lo), x, bottom + 16); }
      else a.cats.forEach(c => ctx.fillText(c, x + 4, a.pos(c) - 4));
    });
    const lines = runs.map((r, k) => {
      const points = scaled.map((a, i) => [xOf(i), a.pos(a.values[String(r.id)])]);
      ctx.strokeStyle = colors[k]; ctx.lineWidth = 2; ctx.beginPath();
      let pen = false;
      for (const [x, y] of points) { if (y === null) { pen = false; continue; } if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y); pen = true; }
      ctx.stroke();
      ctx.fillStyle = colors[k];
      for (const [x, y] of points) if (y !== null) { ctx.beginPath(); ctx.arc(x, y, 3.5, 0, 2 * Math.PI); ctx.fill(); }
      return {run: r.id, name: r.name, values: scaled.map(a => a.values[String(r.id)] ?? null)};
    });
    window.runhistoryParcoords = {axes: scaled.map(a => ({name: a.name, kind: a.kind})), lines};
  }

  class ComparePage {
    constructor(ids) { this.ids = ids; this.x = "epoch"; }

    async start() {
      const main = document.getElementById("compare");
      if (this.ids.length < 2 || this.ids.length > 20) throw new Error("compare needs 2 to 20 runs: /compare?runs=1,2");
      this.answer = await api("/api/compare" + qs({runs: this.ids.join(",")}));
      this.runs = this.answer.runs;
      this.colors = this.runs.map((_, i) => PALETTE[i % PALETTE.length]);
      clear(main).append(this.legend(), this.controls(), el("div", {id: "compare-charts", class: "charts"}),
        diffTable("Params that differ", "compare-params", this.answer.params, this.runs),
        diffTable("Config fields that differ", "compare-configs", this.answer.configs, this.runs),
        metricsTable(this.answer.metrics, this.runs), this.parcoordsCard());
      this.drawParcoords();
      await this.loadCharts();
    }

    legend() {
      return el("section", {class: "card"}, el("h1", {}, `Compare ${this.runs.length} runs`),
        el("ul", {class: "legend"}, this.runs.map((r, i) => el("li", {dataset: {runId: r.id}},
          el("span", {class: "swatch", style: `background:${this.colors[i]}`}), " ",
          el("a", {href: R.isLive() ? `/runs/${r.id}` : null}, r.name), el("span", {class: "muted"}, ` ${r.experiment} `), badge(r.status)))));
    }

    controls() {
      return el("div", {class: "controls"}, el("label", {}, "x axis ", el("select", {id: "x-mode", onchange: e => { this.x = e.target.value; this.loadCharts(); }},
        ["epoch", "step", "seq", "time"].map(x => el("option", {value: x}, x)))));
    }

    /** The axes one can pick: the params that differ, then the config fields that differ and
     *  hold one value (not a dict or a list). */
    candidateAxes() {
      const scalar = values => Object.values(values).every(v => v === null || typeof v !== "object");
      return [
        ...Object.keys(this.answer.params).sort().map(k => ({name: k, from: "param", values: this.answer.params[k]})),
        ...Object.keys(this.answer.configs).sort().filter(f => scalar(this.answer.configs[f]))
          .map(f => ({name: f, from: "config", values: this.answer.configs[f]})),
      ];
    }

    parcoordsCard() {
      const metrics = Object.keys(this.answer.metrics).sort();
      const preferred = metrics.find(m => /eval|val/.test(m) && /loss/.test(m)) || metrics[0];
      this.parMetric = preferred;
      const candidates = this.candidateAxes();
      const params = candidates.filter(a => a.from === "param");
      // by default the params; a sweep without params shows its first differing config fields
      this.axesOn = new Set((params.length ? params : candidates.slice(0, 4)).map(a => a.name));
      const picks = el("details", {class: "columns"}, el("summary", {}, "axes"), candidates.map(a => el("label", {},
        el("input", {type: "checkbox", value: a.name, checked: this.axesOn.has(a.name), onchange: e => {
          if (e.target.checked) this.axesOn.add(a.name); else this.axesOn.delete(a.name);
          this.drawParcoords();
        }}), ` ${a.name} (${a.from})`)));
      return el("section", {class: "card", id: "compare-parcoords"}, el("h2", {}, "Parallel coordinates"),
        el("div", {class: "controls"}, el("label", {}, "best of ", el("select", {id: "parcoords-metric", onchange: e => { this.parMetric = e.target.value; this.drawParcoords(); }},
          metrics.map(m => el("option", {value: m, selected: m === preferred}, m)))), picks),
        el("canvas", {id: "parcoords", class: "parcoords"}));
    }

    drawParcoords() {
      const axes = this.candidateAxes().filter(a => this.axesOn.has(a.name));
      if (this.parMetric) {
        const best = {};
        for (const [id, v] of Object.entries(this.answer.metrics[this.parMetric] || {})) best[id] = v.best;
        axes.push({name: "best " + this.parMetric, values: best});
      }
      drawParcoords(document.getElementById("parcoords"), axes, this.runs, this.colors);
    }

    async loadCharts() {
      const x = this.x, box = document.getElementById("compare-charts");
      const metrics = Object.keys(this.answer.metrics).sort();
      // only the runs that have the metric (the compare answer says which)
      const has = (m, r) => Boolean((this.answer.metrics[m] || {})[String(r.id)]);
      const answers = await Promise.all(metrics.map(m => Promise.all(this.runs.map(r =>
        has(m, r) ? api(R.historyPath(r.id, m, x)) : Promise.resolve({series: []})))));
      if (x !== this.x) return;
      clear(box);
      metrics.forEach((m, i) => {
        const lines = [];
        answers[i].forEach((a, k) => {
          for (const s of a.series.filter(s => s.rev === 0 && s.x.length)) {
            lines.push({label: this.runs[k].name + (s.stage > 1 ? ` (stage ${s.stage})` : ""), run: this.runs[k].id, stage: s.stage, rev: 0,
              color: this.colors[k], dash: s.stage > 1 ? [6, 3] : undefined, x: s.x, y: s.y});
          }
        });
        const card = el("div", {class: "chart-card", dataset: {metric: m}}, el("div", {class: "chart-head"}, el("h3", {}, m)), el("div", {class: "chart"}));
        box.appendChild(card);
        if (!lines.length) {
          const old = window.runhistoryCharts[m];
          if (old) { old.uplot.destroy(); delete window.runhistoryCharts[m]; }
          card.querySelector(".chart").appendChild(el("p", {class: "muted"}, "No points on this axis."));
          return;
        }
        R.drawChart(card.querySelector(".chart"), {key: m, metric: m, xMode: x, log: false, smoothing: 0, lines, markers: []});
      });
    }
  }

  R.pages = R.pages || {};
  R.pages.compare = async () => { R.comparePage = new ComparePage(runIdsFromPage()); await R.comparePage.start(); };
})();
