// The SQL page: a read-only query box (the server runs it through read.query.run_query, the same
// function as `runhistory-sql query`), the README's recipes as one-click examples, a table and a
// CSV download. Refusals and timeouts come back as HTTP 400 with a one-line message.
"use strict";

(function () {
  const R = window.runhistory;
  const {api, qs, el, clear, fmtValue} = R;

  async function start() {
    const box = document.getElementById("sql");
    const text = el("textarea", {id: "sql-text", rows: 8, spellcheck: false, placeholder: "SELECT run_name, status FROM v_runs"});
    const result = el("div", {id: "sql-result"});
    const csv = el("a", {id: "sql-csv", class: "button", hidden: true, download: "query.csv"}, "download CSV");
    const recipes = el("ul", {id: "sql-recipes", class: "recipes"});
    const run = async () => {
      const sql = text.value.trim();
      if (!sql) return;
      clear(result).appendChild(el("p", {class: "muted"}, "running…"));
      csv.hidden = true;
      history.replaceState(null, "", location.pathname + qs({sql}));
      try {
        const answer = await api("/api/query" + qs({sql, format: "json"}));
        csv.href = "/api/query" + qs({sql, format: "csv"});
        csv.hidden = false;
        clear(result).append(
          el("p", {class: "muted", id: "sql-count"}, `${answer.rows.length} rows` + (answer.truncated ? ` (truncated at ${answer.limit})` : "")),
          R.table(answer.columns, answer.rows.map(row => el("tr", {}, row.map(v => el("td", {}, fmtValue(v))))), {class: "grid", id: "sql-table"}));
      } catch (e) {
        R.showError(result, e);
      }
    };
    const form = el("form", {onsubmit: e => { e.preventDefault(); run(); }}, text, el("div", {class: "controls"},
      el("button", {type: "submit", id: "sql-run"}, "run"), " ", csv, el("span", {class: "muted"}, " read only; Ctrl+Enter runs")));
    text.addEventListener("keydown", e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
    clear(box).append(el("h1", {}, "SQL"), form, result, el("h2", {}, "Recipes"), recipes);
    const initial = new URLSearchParams(location.search).get("sql");
    if (initial) { text.value = initial; run(); }
    try {
      for (const recipe of await api("/api/recipes")) {
        recipes.appendChild(el("li", {}, el("button", {class: "recipe", onclick: () => { text.value = recipe.sql; run(); }}, recipe.title)));
      }
    } catch (e) {
      R.showError(recipes, e);
    }
  }

  R.pages = R.pages || {};
  R.pages.sql = start;
})();
