// Four-eyes replay: the player's request form and the approvers' grant / refuse buttons.
// Everything goes through window.pbxr.send (the session's CSRF token); the service decides.
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("replay-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var status = document.getElementById("replay-sent");
        window.pbxr.send("POST", "/api/calls/" + encodeURIComponent(form.getAttribute("data-call")) +
                         "/replay-requests", {reason: document.getElementById("replay-reason").value})
          .then(function (r) {
            status.hidden = !r.ok;
            if (r.ok) { form.hidden = true; }
          });
      });
    }
    var status = document.getElementById("replay-status");
    Array.prototype.forEach.call(document.querySelectorAll(".replay-decide"), function (button) {
      button.addEventListener("click", function () {
        var id = button.getAttribute("data-request");
        window.pbxr.send("POST", "/api/replay-requests/" + encodeURIComponent(id) + "/" +
                         button.getAttribute("data-decision")).then(function (r) {
          status.textContent = r.ok ? status.getAttribute("data-done")
                                    : status.getAttribute("data-failed") + " (" + r.status + ")";
          if (r.ok) {
            var row = document.querySelector('tr[data-request="' + id + '"]');
            if (row) { row.parentNode.removeChild(row); }
          }
        });
      });
    });
  });
})();
