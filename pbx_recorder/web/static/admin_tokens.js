// /admin/tokens: the create form posts JSON to /api/tokens and the revoke buttons send DELETE
// /api/tokens/<id>, with the page's CSRF token (console.js's pbxr.send).  A new token is put into
// the page as text, once, from the API's answer; the page reloads when the admin says it is copied.
"use strict";
(function () {
  function status(ok, text) { window.pbxr.status("admin-status", ok, text); }
  function answer(r) {
    return r.json().catch(function () { return {}; }).then(function (j) {
      status(r.ok, j.error || "");
      return r.ok ? j : null;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var created = document.querySelector("form.js-token-new");
    if (created) {
      created.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = {user: created.elements.user.value, role: created.elements.role.value,
                    days: parseInt(created.elements.days.value, 10), label: created.elements.label.value};
        window.pbxr.send("POST", "/api/tokens", body).then(answer).then(function (j) {
          if (!j) { return; }
          document.getElementById("new-token").textContent = j.token;
          document.getElementById("new-token-box").hidden = false;
          created.reset();
        });
      });
    }
    var done = document.getElementById("new-token-done");
    done.addEventListener("click", function () {
      document.getElementById("new-token").textContent = "";
      window.location.reload();
    });
    document.querySelectorAll("form.js-revoke").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        if (!window.confirm(form.getAttribute("data-confirm") + " " + form.getAttribute("data-id"))) { return; }
        window.pbxr.send("DELETE", "/api/tokens/" + encodeURIComponent(form.getAttribute("data-id")))
          .then(answer).then(function (j) {
            if (j) { window.setTimeout(function () { window.location.reload(); }, 300); }
          });
      });
    });
  });
})();
