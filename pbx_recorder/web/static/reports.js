// Reports page: save and delete schedules (window.pbxr.send carries the session's CSRF token;
// the service decides who may schedule which team's report).
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var status = document.getElementById("schedule-status");
    function show(r) {
      if (!status) { return; }
      status.textContent = r.ok ? status.getAttribute("data-done")
                                : status.getAttribute("data-failed") + " (" + r.status + ")";
    }
    var form = document.getElementById("schedule-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        window.pbxr.send("POST", "/api/report-schedules", {
          name: document.getElementById("schedule-name").value,
          period: document.getElementById("schedule-period").value,
          team: document.getElementById("schedule-team").value,
          mail_to: document.getElementById("schedule-mail").value
        }).then(function (r) {
          show(r);
          if (r.ok) { window.location.reload(); }
        });
      });
    }
    Array.prototype.forEach.call(document.querySelectorAll(".schedule-delete"), function (button) {
      button.addEventListener("click", function () {
        var id = button.getAttribute("data-schedule");
        window.pbxr.send("POST", "/api/report-schedules/" + encodeURIComponent(id) + "/delete").then(function (r) {
          show(r);
          if (r.ok) {
            var row = document.querySelector('tr[data-schedule="' + id + '"]');
            if (row) { row.parentNode.removeChild(row); }
          }
        });
      });
    });
  });
})();
