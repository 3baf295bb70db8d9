// Charts: one uPlot per metric. Lines come as {label, color, x, y, faint, dash}; markers as
// {x, kind, detail}. The data each chart draws is kept in window.runhistoryCharts[key] so that
// tests read the points from the page.
"use strict";

(function () {
  const {el} = window.runhistory;

  const MARKER_KINDS = {
    freeze: "#1565c0", unfreeze: "#2e7d32", resumed: "#6a1b9a", rewind: "#ef6c00",
    stop_training: "#c62828", exception: "#b71c1c", exit: "#b71c1c", interrupted: "#b71c1c",
  };

  // epochs, steps and seqs are whole numbers: no tick at 0.5
  const INT_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7];

  function describeEvent(kind, p) {
    p = p || {};
    const groups = g => !g || !g.length ? "no layer group" : (g.length === 1 ? "group " + g[0] : "groups " + g.join(", "));
    if (kind === "freeze" || kind === "unfreeze") {
      const froze = kind === "freeze";
      const g = froze ? p.groups_frozen : p.groups_unfrozen, n = froze ? p.numel_frozen : p.numel_unfrozen;
      let what = (froze ? "froze " : "unfroze ") + groups(g) + (g && g.length && n != null ? ` (${n} params)` : "");
      if (p.trainable_numel != null && p.total_numel != null) what += `; ${p.trainable_numel} of ${p.total_numel} params trainable`;
      return what;
    }
    if (kind === "resumed") return `from epoch ${p.from_epoch}${p.previous_status ? " (was " + p.previous_status + ")" : ""}, on ${p.host} pid ${p.pid}`;
    if (kind === "rewind") return p.to_step !== undefined ? `to step ${p.to_step}, ${p.superseded_points} points superseded`
      : `to epoch ${p.to_epoch}, ${p.superseded_points} points superseded`;
    if (kind === "training_run_start") return `${p.num_epochs} epochs`;
    if (kind === "stop_training" || kind === "interrupted") return String(p.reason || "");
    if (kind === "exception") return `${p.type}: ${p.message}`;
    if (kind === "exit") return `exit code ${p.code}`;
    if (kind === "epoch_end" || kind === "training_run_end") return "";
    return Object.entries(p).map(([k, v]) => k + "=" + JSON.stringify(v)).join(", ");
  }

  /** TensorBoard's smoothing: a debiased exponential moving average; gaps stay gaps. */
  function ema(ys, weight) {
    if (!weight) return ys;
    const out = new Array(ys.length);
    let last = 0, n = 0;
    for (let i = 0; i < ys.length; i++) {
      const v = ys[i];
      if (v === null || v === undefined || !isFinite(v)) { out[i] = v === undefined ? undefined : null; continue; }
      last = last * weight + (1 - weight) * v;
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  /** Put lines with their own x values on one x array: [X, Y1, ...]. A point another line has
   *  is `undefined` (spanned), a real gap stays `null` (drawn as a gap). */
  function align(lines) {
    const x0 = lines[0].x;
    const same = l => l.x === x0 || (l.x.length === x0.length && l.x.every((v, i) => v === x0[i]));
    if (lines.every(same)) return [x0.slice(), ...lines.map(l => l.y.slice())];  // e.g. a line and its smoothing
    const total = lines.reduce((n, l) => n + l.x.length, 0);
    const pos = lines.map(() => 0);
    const X = new Array(total), Ys = lines.map(() => new Array(total).fill(undefined));
    for (let k = 0; k < total; k++) {  // k-way merge: each line's x is ascending
      let best = -1;
      for (let j = 0; j < lines.length; j++)
        if (pos[j] < lines[j].x.length && (best < 0 || lines[j].x[pos[j]] < lines[best].x[pos[best]])) best = j;
      X[k] = lines[best].x[pos[best]];
      Ys[best][k] = lines[best].y[pos[best]];
      pos[best]++;
    }
    return [X, ...Ys];
  }

  function alpha(color, a) {
    const n = parseInt(color.slice(1), 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
  }

  function markersPlugin(markers, tip) {
    return {hooks: {
      draw: [u => {
        const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
        ctx.save();
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([5 * devicePixelRatio, 4 * devicePixelRatio]);
        for (const m of markers) {
          const px = u.valToPos(m.x, "x", true);
          if (!isFinite(px) || px < u.bbox.left - 1 || px > u.bbox.left + u.bbox.width + 1) continue;
          ctx.strokeStyle = MARKER_KINDS[m.kind] || "#555";
          ctx.beginPath(); ctx.moveTo(px, top); ctx.lineTo(px, top + height); ctx.stroke();
        }
        ctx.restore();
      }],
      setCursor: [u => {
        const left = u.cursor.left;
        const hit = left >= 0 ? markers.find(m => Math.abs(u.valToPos(m.x, "x") - left) <= 5) : null;
        if (!hit) { tip.hidden = true; return; }
        tip.textContent = `${hit.kind}${hit.where ? " (" + hit.where + ")" : ""}${hit.detail ? ": " + hit.detail : ""}`;
        tip.style.left = (left + u.over.offsetLeft + 8) + "px";
        tip.style.top = (u.over.offsetTop + 4) + "px";
        tip.hidden = false;
      }],
    }};
  }

  /**
   * Draw (or redraw) a chart into `box`.
   * spec = {key, title, xMode, log, smoothing, lines: [...], markers: [...], onZoom(min, max)}
   */
  function drawChart(box, spec) {
    const old = window.runhistoryCharts[spec.key];
    if (old && old.uplot) old.uplot.destroy();
    box.textContent = "";
    const tip = el("div", {class: "marker-tip", hidden: true});
    box.appendChild(tip);
    const drawn = [], uLines = [];
    for (const line of spec.lines) {
      const smooth = spec.smoothing > 0 && !line.faint;
      const y = spec.log ? line.y.map(v => (v === null || v === undefined || v > 0 ? v : null)) : line.y;
      uLines.push({x: line.x, y, series: {label: line.label + (smooth ? " (raw)" : ""), stroke: alpha(line.color, smooth || line.faint ? 0.3 : 1),
        width: 1.5, dash: line.dash, points: {show: line.x.length < 60}}});
      drawn.push({label: line.label, stage: line.stage, rev: line.rev, run: line.run, kind: "raw", points: line.x.length});
      if (smooth) {
        uLines.push({x: line.x, y: ema(y, spec.smoothing), series: {label: line.label, stroke: line.color, width: 2, points: {show: false}}});
        drawn.push({label: line.label, stage: line.stage, rev: line.rev, run: line.run, kind: "smooth", points: line.x.length});
      }
    }
    const data = uLines.length ? align(uLines) : [[], []];
    const width = Math.max(320, box.clientWidth || 600);
    const opts = {
      title: spec.title, width, height: 260, ms: 1e-3,
      scales: {x: {time: spec.xMode === "time"}, y: spec.log ? {distr: 3} : {}},
      axes: [spec.xMode === "time" ? {} : {label: spec.xMode, incrs: INT_STEPS}, {size: 60}],
      series: [{label: spec.xMode}, ...(uLines.length ? uLines.map(l => l.series) : [{label: "none"}])],
      cursor: {drag: {x: true, y: false}},
      legend: {live: true},
      plugins: [markersPlugin(spec.markers || [], tip)],
      hooks: spec.onZoom ? {setSelect: [u => {
        if (u.select.width < 2) return;
        spec.onZoom(u.posToVal(u.select.left, "x"), u.posToVal(u.select.left + u.select.width, "x"));
      }]} : {},
    };
    const plot = new uPlot(opts, data, box);
    box.dataset.points = String(drawn.filter(d => d.kind === "raw").reduce((n, d) => n + d.points, 0));
    window.runhistoryCharts[spec.key] = {
      key: spec.key, metric: spec.metric, uplot: plot, xMode: spec.xMode, drawn,
      data: {lines: spec.lines.map(l => ({label: l.label, stage: l.stage, rev: l.rev, run: l.run, x: l.x, y: l.y}))},
      markers: (spec.markers || []).map(m => ({kind: m.kind, x: m.x, stage: m.stage, epoch: m.epoch, detail: m.detail})),
    };
    return plot;
  }

  Object.assign(window.runhistory, {drawChart, ema, align, describeEvent, MARKER_KINDS});
})();
