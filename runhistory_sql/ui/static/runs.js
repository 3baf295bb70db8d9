// The runs page: every run of every experiment, filtered, sorted and paged by the server (SQL),
// its statuses refreshed every 2 s; checkboxes pick runs to compare.
"use strict";

(function () {
  const R = window.runhistory;
  const {api, qs, el, clear, fmtNumber, fmtValue, fmtTime, fmtDuration, badge} = R;

  const BASE_COLUMNS = [
    ["status", "status"], ["experiment", "experiment"], ["name", "name"], ["created_at", "started"],
    ["duration_s", "duration"], ["num_stages", "stages"], ["current_epoch", "epoch"],
  ];

  function readState() {
    const p = new URLSearchParams(location.search);
    return {
      experiment: p.get("experiment") || "", status: p.get("status") || "", q: p.get("q") || "",
      where: p.getAll("where"), sort: p.get("sort") || "created_at", order: p.get("order") || "desc",
      offset: Number(p.get("offset") || 0), limit: Number(p.get("limit") || 50),
      metrics: p.has("metrics") ? p.get("metrics").split(",").filter(Boolean) : null,
      cols: (p.get("cols") || "").split(",").filter(Boolean),
    };
  }

  function defaultMetrics(all) {
    const evals = all.filter(m => /eval|val/.test(m) && /loss/.test(m));
    const rest = all.filter(m => !evals.includes(m));
    return [...evals, ...rest].slice(0, 2);
  }

  class RunsPage {
    constructor() { this.state = readState(); this.selected = new Set(); }

    query() {
      const s = this.state;
      return qs({experiment: s.experiment, status: s.status, q: s.q, where: s.where, sort: s.sort, order: s.order,
        offset: s.offset, limit: s.limit, metrics: (s.metrics || []).join(",")});
    }

    saveState() {
      const s = this.state;
      const search = qs({experiment: s.experiment, status: s.status, q: s.q, where: s.where,
        sort: s.sort === "created_at" ? "" : s.sort, order: s.order === "desc" ? "" : s.order,
        offset: s.offset || "", limit: s.limit === 50 ? "" : s.limit,
        metrics: s.metrics ? s.metrics.join(",") : "", cols: s.cols.join(",")});
      history.replaceState(null, "", location.pathname + search);
    }

    async start() {
      this.buildFilters();
      await this.refresh();
      this.stopLive = R.every(1500, () => this.refresh(true));
    }

    async refresh(quiet) {
      const error = document.getElementById("runs-error");
      try {
        if (this.state.metrics === null) {
          const first = await api("/api/runs" + qs({limit: 1}));
          this.state.metrics = defaultMetrics(first.metrics);
        }
        const answer = await api("/api/runs" + this.query());
        clear(error);
        const seen = JSON.stringify(answer);
        if (quiet && seen === this.seen) return;
        this.seen = seen;
        this.answer = answer;
        this.render(answer, quiet);
      } catch (e) {
        R.showError(error, e);
      }
    }

    buildFilters() {
      const s = this.state;
      const box = clear(document.getElementById("runs-filters"));
      const apply = () => { s.offset = 0; this.saveState(); this.refresh(); };
      this.experimentSelect = el("select", {id: "filter-experiment", onchange: e => { s.experiment = e.target.value; apply(); }});
      const status = el("select", {id: "filter-status", onchange: e => { s.status = e.target.value; apply(); }},
        ["", "running", "finished", "failed", "crashed"].map(v => el("option", {value: v, selected: v === s.status}, v || "any status")));
      const text = el("input", {type: "search", id: "filter-q", placeholder: "name contains", value: s.q});
      const where = el("input", {type: "text", id: "filter-where", placeholder: "lr<1e-4; model=bert-base; tag.team=nlp", value: s.where.join("; "), size: 34});
      const metrics = el("input", {type: "text", id: "filter-metrics", placeholder: "metrics, comma separated", value: (s.metrics || []).join(","), size: 30});
      this.metricsInput = metrics;
      const submit = el("button", {type: "submit"}, "apply");
      const form = el("form", {class: "filters", onsubmit: e => {
        e.preventDefault();
        s.q = text.value.trim();
        s.where = where.value.split(";").map(w => w.trim()).filter(Boolean);
        s.metrics = metrics.value.split(",").map(m => m.trim()).filter(Boolean);
        apply();
      }}, el("label", {}, "experiment ", this.experimentSelect), el("label", {}, "status ", status),
        el("label", {}, "name ", text), el("label", {}, "where ", where), el("label", {}, "metrics ", metrics), submit);
      this.columnsBox = el("details", {class: "columns"}, el("summary", {}, "params and tags as columns"));
      box.append(form, this.columnsBox);
    }

    renderOptions(answer) {
      const s = this.state;
      clear(this.experimentSelect).append(...["", ...answer.experiments].map(v =>
        el("option", {value: v, selected: v === s.experiment}, v || "all experiments")));
      if (document.activeElement !== this.metricsInput) this.metricsInput.value = (s.metrics || []).join(",");
      const keys = [...answer.param_keys.map(k => "param." + k), ...answer.tag_keys.map(k => "tag." + k)];
      const have = [...this.columnsBox.querySelectorAll("input")].map(i => i.value);
      if (have.join() === keys.join()) return;
      this.columnsBox.querySelectorAll("label").forEach(l => l.remove());
      for (const key of keys) {
        this.columnsBox.appendChild(el("label", {}, el("input", {type: "checkbox", value: key, checked: s.cols.includes(key), onchange: e => {
          s.cols = e.target.checked ? [...s.cols, key] : s.cols.filter(c => c !== key);
          this.saveState(); this.render(this.answer);
        }}), " " + key));
      }
    }

    columns() {
      const cols = BASE_COLUMNS.map(([key, label]) => ({key, label, sort: key, cell: r => this.baseCell(key, r)}));
      for (const m of this.state.metrics || []) {
        cols.push({key: "last." + m, label: "last " + m, sort: "last." + m, num: true, cell: r => fmtNumber((r.metrics[m] || {}).last)});
        cols.push({key: "best." + m, label: "best " + m, sort: "best." + m, num: true, cell: r => fmtNumber((r.metrics[m] || {}).best)});
      }
      for (const c of this.state.cols) {
        const [kind, ...rest] = c.split("."), key = rest.join(".");
        cols.push({key: c, label: c, sort: c,  // param.KEY and tag.KEY sort in SQL alike
          cell: r => fmtValue(kind === "param" ? (r.params || {})[key] : (r.tags || {})[key])});
      }
      return cols;
    }

    baseCell(key, r) {
      if (key === "status") return badge(r.status);
      if (key === "name") return el("a", {href: `/runs/${r.id}`, class: "run-link"}, r.name);
      if (key === "created_at") return fmtTime(r.created_at);
      if (key === "duration_s") return fmtDuration(r.duration_s);
      return fmtValue(r[key]);
    }

    header(col) {
      const s = this.state;
      if (!col.sort) return el("th", {}, col.label);
      const active = s.sort === col.sort;
      return el("th", {class: active ? "sorted " + s.order : "sortable", dataset: {sort: col.sort}}, el("button", {class: "sort", onclick: () => {
        s.order = active && s.order === "asc" ? "desc" : (active ? "asc" : (col.sort === "created_at" ? "desc" : "asc"));
        s.sort = col.sort; s.offset = 0; this.saveState(); this.refresh();
      }}, col.label, active ? (s.order === "asc" ? " ▲" : " ▼") : ""));
    }

    render(answer) {
      this.renderOptions(answer);
      const cols = this.columns();
      const rows = answer.runs.map(r => el("tr", {dataset: {runId: r.id, status: r.status}},
        el("td", {}, el("input", {type: "checkbox", class: "pick", checked: this.selected.has(r.id), onchange: e => {
          if (e.target.checked) this.selected.add(r.id); else this.selected.delete(r.id);
          this.renderCompare();
        }})),
        cols.map(c => el("td", {class: (c.num ? "num " : "") + "col-" + c.key.replace(/[^a-zA-Z0-9_-]/g, "_")}, c.cell(r)))));
      const grid = R.table([el("th", {}, ""), ...cols.map(c => this.header(c))], rows, {class: "grid runs", id: "runs-table"});
      clear(document.getElementById("runs-list")).appendChild(grid);
      this.renderPager(answer);
      this.renderCompare();
    }

    renderPager(answer) {
      const s = this.state, box = clear(document.getElementById("runs-pager"));
      const last = Math.min(answer.offset + answer.runs.length, answer.total);
      const go = offset => { s.offset = Math.max(0, offset); this.saveState(); this.refresh(); };
      box.append(el("button", {id: "page-prev", disabled: answer.offset <= 0, onclick: () => go(answer.offset - s.limit)}, "‹ previous"),
        el("span", {id: "page-info"}, answer.total ? ` ${answer.offset + 1}–${last} of ${answer.total} runs ` : " no runs match "),
        el("button", {id: "page-next", disabled: last >= answer.total, onclick: () => go(answer.offset + s.limit)}, "next ›"));
    }

    renderCompare() {
      const ids = [...this.selected];
      const box = clear(document.getElementById("runs-compare"));
      const ok = ids.length >= 2 && ids.length <= 20;
      box.append(el("a", {id: "compare-link", class: "button" + (ok ? "" : " disabled"), href: ok ? "/compare?runs=" + ids.join(",") : null,
        "aria-disabled": ok ? null : "true"}, `compare ${ids.length} selected`),
        ok ? "" : el("span", {class: "muted"}, " pick 2 to 20 runs"));
    }
  }

  R.pages = R.pages || {};
  R.pages.runs = async () => { R.runsPage = new RunsPage(); await R.runsPage.start(); };
})();
