// Live progress of a run page: polls the JSON API (same origin, the session cookie) while
// the run is going and updates each shard's cells; values go in as text, never as markup.
(function () {
  const main = document.querySelector("[data-run-id]");
  if (!main || main.dataset.terminal === "true") return;
  const id = main.dataset.runId;
  const terminal = ["succeeded", "failed", "cancelled"];
  const set = (root, sel, text) => {
    const el = root.querySelector(sel);
    if (el && el.textContent !== String(text)) el.textContent = String(text);
  };
  async function poll() {
    let run;
    try {
      const resp = await fetch("/api/runs/" + encodeURIComponent(id), { credentials: "same-origin" });
      if (!resp.ok) return setTimeout(poll, 3000);
      run = (await resp.json()).run;
    } catch (e) {
      return setTimeout(poll, 3000);
    }
    let done = 0, records = 0;
    for (const s of run.shards) {
      const row = main.querySelector('tr[data-shard="' + s.index + '"]');
      records += s.records;
      const over = terminal.includes(s.state);
      if (over) done++;
      if (!row) continue;
      set(row, ".state", s.state);
      set(row, ".worker", s.worker || "-");
      set(row, ".fence", s.fence);
      set(row, ".pages", s.pages);
      set(row, ".records", s.records);
      set(row, ".error", s.error);
      const bar = row.querySelector("progress");
      if (bar && over) bar.value = 1;
    }
    set(main, "#run-state", run.state);
    set(main, "#run-records", records);
    set(main, "#run-done", done + " of " + run.shards.length);
    const bar = main.querySelector("#run-progress");
    if (bar) bar.value = run.shards.length ? done / run.shards.length : 1;
    if (terminal.includes(run.state)) return window.location.reload();
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
