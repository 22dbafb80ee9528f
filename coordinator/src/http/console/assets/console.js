// Live progress of a run page: follows the run's event stream (same origin, the session
// cookie) while the run is going and updates each shard's cells; polls the JSON API every
// second instead where the stream is refused (too many open, or no EventSource). Values go
// in as text, never as markup.
(function () {
  const main = document.querySelector("[data-run-id]");
  if (!main || main.dataset.terminal === "true") return;
  const id = encodeURIComponent(main.dataset.runId);
  const terminal = ["succeeded", "failed", "cancelled"];
  const set = (root, sel, text) => {
    const el = root.querySelector(sel);
    if (el && el.textContent !== String(text)) el.textContent = String(text);
  };
  // As `run_page::breaker` writes it.
  const utc = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  const breakerText = (b) =>
    !b ? "-" : b.until_ms === 0
      ? "breaker " + b.host + " " + b.state + " (probing)"
      : "breaker " + b.host + " " + b.state + " until " + utc(b.until_ms);
  // Shows `run`; true once it has ended (the page then reloads to show the end).
  function show(run) {
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
      set(row, ".dead-letters", s.dead_letters);
      set(row, ".breaker", breakerText(s.breaker));
      set(row, ".error", s.error);
      const bar = row.querySelector("progress");
      if (bar && over) bar.value = 1;
    }
    set(main, "#run-state", run.state);
    set(main, "#run-records", records);
    set(main, "#run-dead-letters", run.dead_letters);
    set(main, "#run-done", done + " of " + run.shards.length);
    const bar = main.querySelector("#run-progress");
    if (bar) bar.value = run.shards.length ? done / run.shards.length : 1;
    if (terminal.includes(run.state)) {
      window.location.reload();
      return true;
    }
    return false;
  }
  async function poll() {
    let run;
    try {
      const resp = await fetch("/api/runs/" + id, { credentials: "same-origin" });
      if (!resp.ok) return setTimeout(poll, 3000);
      run = (await resp.json()).run;
    } catch (e) {
      return setTimeout(poll, 3000);
    }
    if (!show(run)) setTimeout(poll, 1000);
  }
  if (!window.EventSource) return void setTimeout(poll, 1000);
  main.dataset.live = "connecting";
  const events = new EventSource("/api/runs/" + id + "/events");
  events.addEventListener("open", () => { main.dataset.live = "stream"; });
  events.addEventListener("run", (e) => {
    if (show(JSON.parse(e.data).run)) events.close();
  });
  events.addEventListener("gone", () => events.close());
  // Refused (503 when too many streams are open) or cut: poll from now on.
  events.addEventListener("error", () => {
    events.close();
    main.dataset.live = "poll";
    setTimeout(poll, 1000);
  });
})();
