// Exports: send the export form (the search filter rides in the query string), then poll the
// user's jobs for their progress (?progress=1); a finished job gets its download link.  The
// password goes to the service once, in the POST body, and is cleared from the form right after.
"use strict";
(function () {
  function cell(row, cls) { return row.querySelector("." + cls); }

  function render(table, jobs) {
    var body = table.tBodies[0];
    var label = table.getAttribute("data-download");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    jobs.forEach(function (j) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-job", j.id);
      tr.setAttribute("data-state", j.state);
      var when = document.createElement("td");
      when.textContent = new Date(j.created_at * 1000).toLocaleString();
      var kind = document.createElement("td");
      kind.textContent = j.kind;
      var state = document.createElement("td");
      state.className = "job-state";
      state.textContent = j.state;
      var prog = document.createElement("td");
      var bar = document.createElement("progress");
      bar.className = "job-progress";
      bar.max = 1;
      bar.value = j.progress;
      var count = document.createElement("span");
      count.className = "job-count";
      count.textContent = " " + j.rows_done + " / " + j.rows_total;
      prog.appendChild(bar);
      prog.appendChild(count);
      var result = document.createElement("td");
      result.className = "job-result";
      if (j.state === "done") {
        var a = document.createElement("a");
        a.className = "job-download";
        a.href = "/api/exports/" + encodeURIComponent(j.id) + "/file";
        a.textContent = label;
        result.appendChild(a);
      } else if (j.error) {
        var e = document.createElement("span");
        e.className = "error";
        e.textContent = j.error;
        result.appendChild(e);
      }
      var waiting = j.pending_count || (j.pending ? j.pending.length : 0);
      if (waiting) {
        var p = document.createElement("span");
        p.className = "job-pending";
        p.textContent = " " + table.getAttribute("data-pending") + ": " + waiting;
        result.appendChild(p);
      }
      [when, kind, state, prog, result].forEach(function (td) { tr.appendChild(td); });
      body.appendChild(tr);
    });
  }

  function poll(table) {
    // states and counts only (no filter, no call): a poll every second writes no audit row
    fetch("/api/exports?progress=1", {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (data) {
      if (!data) { return; }
      render(table, data.jobs);
      var busy = data.jobs.some(function (j) { return j.state === "queued" || j.state === "running"; });
      if (busy) { window.setTimeout(function () { poll(table); }, 1000); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("export-form");
    var table = document.getElementById("export-jobs");
    if (!form || !table) { return; }
    var status = document.getElementById("export-status");
    var kind = document.getElementById("export-kind");
    var fieldset = document.getElementById("export-fields");
    kind.addEventListener("change", function () { fieldset.hidden = kind.value === "audio"; });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var pw = document.getElementById("export-password");
      var pw2 = document.getElementById("export-password2");
      if (pw.value !== pw2.value) { status.textContent = status.getAttribute("data-mismatch"); return; }
      if (pw.value.length < Number(form.getAttribute("data-min"))) {
        status.textContent = status.getAttribute("data-short");
        return;
      }
      var fields = Array.prototype.filter.call(document.querySelectorAll(".export-field"), function (c) {
        return c.checked;
      }).map(function (c) { return c.value; });
      var unmasked = document.getElementById("export-unmasked");
      var body = {kind: kind.value, password: pw.value, unmasked: !!(unmasked && unmasked.checked)};
      if (kind.value !== "audio") { body.fields = fields; }
      var ticked = Array.prototype.map.call(document.querySelectorAll(".export-call"), function (li) {
        return li.getAttribute("data-call-id");
      });
      if (ticked.length) { body.call_ids = ticked; }  // the calls ticked on the search page
      var query = form.getAttribute("data-query");
      window.pbxr.send("POST", "/api/exports" + (query ? "?" + query : ""), body).then(function (r) {
        pw.value = "";
        pw2.value = "";
        return r.json().then(function (data) {
          status.textContent = r.ok ? status.getAttribute("data-queued")
                                    : status.getAttribute("data-failed") + " (" + r.status + "): " + (data.error || "");
          if (r.ok) { poll(table); }
        });
      });
    });
    var busy = table.querySelector('tr[data-state="queued"], tr[data-state="running"]');
    if (busy) { poll(table); }
  });
})();
