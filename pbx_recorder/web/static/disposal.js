// The disposal pages: deletion requests, erasure, legal holds, retention.  Every write goes
// through window.pbxr.send (the session's CSRF token); the service decides and audits.
"use strict";
(function () {
  function $(id) { return document.getElementById(id); }
  function say(ok, status) {
    var line = $("disposal-status");
    if (!line) { return; }
    line.textContent = ok ? line.getAttribute("data-done")
                          : line.getAttribute("data-failed") + " (" + status + ")";
  }
  function failed(r) {
    return r.json().then(function (body) { say(false, r.status + ": " + (body.error || "")); },
                         function () { say(false, r.status); });
  }
  function reloadOn(r) {
    if (r.ok) { window.location.reload(); } else { failed(r); }
  }
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    if (cls) { node.className = cls; }
    return node;
  }

  function deletions() {
    var form = $("deletion-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var ids = $("deletion-calls").value.split(/[\s,]+/).filter(function (s) { return s.length > 0; });
        window.pbxr.send("POST", "/api/deletions", {reason: $("deletion-reason").value, call_ids: ids})
          .then(reloadOn);
      });
    }
    Array.prototype.forEach.call(document.querySelectorAll(".deletion-decide"), function (button) {
      button.addEventListener("click", function () {
        button.disabled = true;
        window.pbxr.send("POST", "/api/deletions/" + encodeURIComponent(button.getAttribute("data-request")) +
                         "/" + button.getAttribute("data-decision"), {}).then(reloadOn);
      });
    });
  }

  function erasure() {
    var form = $("erasure-form");
    if (!form) { return; }
    var request = null;
    var msg = function (name) { return form.getAttribute("data-msg-" + name); };
    var number = function () { return $("erasure-number").value; };
    $("erasure-number").addEventListener("input", function () {
      request = null;
      $("erasure-open").disabled = true;
      $("erasure-execute").disabled = true;
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    $("erasure-preview").addEventListener("click", function () {
      window.pbxr.send("POST", "/api/erasure/preview", {number: number(),
        include_protected: $("erasure-include-protected").checked}).then(function (r) {
        if (!r.ok) { return failed(r); }
        return r.json().then(function (p) {
          var box = $("erasure-covered");
          box.textContent = "";
          var tiers = Object.keys(p.by_tier).map(function (k) { return k + ": " + p.by_tier[k]; }).join(", ");
          box.appendChild(el("p", msg("covers") + ": " + p.calls_total + " " + msg("calls") + ", " +
                                  p.recordings + " " + msg("recordings") + " (" + tiers + "); " +
                                  msg("held") + ": " + p.held, "erasure-summary"));
          var list = el("ul", undefined, "erasure-calls");
          p.calls.forEach(function (c) {
            c.recordings.forEach(function (rec) {
              var item = el("li", c.call_id + " · " + rec.recording_id + " · " + rec.where + " (" + rec.tier + ")",
                            rec.hold_id || rec.hold_reason ? "held" : "");
              if (rec.hold_reason) { item.textContent += " · " + msg("held") + ": " + rec.hold_id + " " + rec.hold_reason; }
              list.appendChild(item);
            });
          });
          box.appendChild(list);
          $("erasure-open").disabled = false;
        });
      });
    });
    $("erasure-open").addEventListener("click", function () {
      window.pbxr.send("POST", "/api/erasure", {number: number(),
        include_protected: $("erasure-include-protected").checked}).then(function (r) {
        if (!r.ok) { return failed(r); }
        return r.json().then(function (row) {
          request = row.request_id;
          var done = $("erasure-done");
          done.hidden = false;
          done.textContent = msg("opened") + ": " + request;
          $("erasure-execute").disabled = false;
        });
      });
    });
    $("erasure-execute").addEventListener("click", function () {
      if (!request) { return; }
      $("erasure-execute").disabled = true;
      window.pbxr.send("POST", "/api/erasure/" + encodeURIComponent(request) + "/execute", {number: number(),
        include_protected: $("erasure-include-protected").checked})
        .then(function (r) {
          if (!r.ok) { return failed(r); }
          return r.json().then(function (receipt) {
            $("erasure-number").value = "";
            var done = $("erasure-done");
            done.textContent = msg("erased") + ": " + receipt.request_id + " · " + receipt.status + " · " +
              receipt.recordings_erased + " " + msg("recordings") + " ";
            var link = el("a", msg("receipt"));
            link.id = "erasure-receipt";
            link.href = "/api/erasure/" + encodeURIComponent(receipt.request_id) + "/receipt";
            link.setAttribute("download", "");
            done.appendChild(link);
            (receipt.protected_deletion_requests || []).forEach(function (id) {
              done.appendChild(document.createTextNode(" · "));  // (decided on the deletions page, by another)
              done.appendChild(el("span", msg("protected-asked") + ": " + id, "protected-asked"));
            });
            say(true);
          });
        });
    });
  }

  function holds() {
    var form = $("hold-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        window.pbxr.send("POST", "/api/holds", {scope: $("hold-scope").value, value: $("hold-value").value,
                                                reason: $("hold-reason").value}).then(reloadOn);
      });
    }
    Array.prototype.forEach.call(document.querySelectorAll(".hold-release"), function (button) {
      button.addEventListener("click", function () {
        var id = button.getAttribute("data-hold");
        var reason = document.querySelector('.release-reason[data-hold="' + id + '"]').value;
        window.pbxr.send("POST", "/api/holds/" + encodeURIComponent(id) + "/release", {reason: reason})
          .then(reloadOn);
      });
    });
  }

  function retention() {
    var form = $("retention-form");
    if (!form) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      $("retention-apply").disabled = true;
      window.pbxr.send("POST", "/api/retention/apply", {confirm: $("retention-confirm").checked})
        .then(function (r) {
          $("retention-apply").disabled = false;
          if (!r.ok) { return failed(r); }
          return r.json().then(function (res) {
            var line = $("retention-result");
            line.hidden = false;
            line.textContent = form.getAttribute("data-msg-result")
              .replace("{disposed}", res.disposed.length).replace("{refused}", res.refused_total)
              .replace("{failed}", res.failed.length).replace("{run}", res.run_id);
            say(true);
          });
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    deletions();
    erasure();
    holds();
    retention();
  });
})();
