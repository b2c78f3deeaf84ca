// /admin/users and /admin/teams: each form posts JSON to the admin API with the page's CSRF token
// (console.js's pbxr.send); the answer is shown as text, the page reloads after a change.
"use strict";
(function () {
  function status(ok, text) { window.pbxr.status("admin-status", ok, text); }
  function value(input) {
    if (input.getAttribute("data-list") || (input.form && input.form.getAttribute("data-list"))) {
      return input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
    }
    return input.value;
  }
  function submit(url, body) {
    return window.pbxr.send("POST", url, body).then(function (r) {
      return r.json().then(function (j) {
        status(r.ok, j.error || "");
        if (r.ok) { window.setTimeout(function () { window.location.reload(); }, 300); }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.js-admin").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var user = form.closest("tr").getAttribute("data-user");
        var field = form.getAttribute("data-field");
        var body = {};
        if (field) { body[field] = value(form.elements[field]); }
        submit("/api/users/" + encodeURIComponent(user) + "/" + form.getAttribute("data-action"), body);
      });
    });
    document.querySelectorAll("form.js-admin-new").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = {};
        var url = form.getAttribute("data-url");
        Array.prototype.forEach.call(form.querySelectorAll("input, select"), function (input) {
          if (url.indexOf("{" + input.name + "}") >= 0) {
            url = url.replace("{" + input.name + "}", encodeURIComponent(input.value));
          } else {
            body[input.name] = value(input);
          }
        });
        submit(url, body);
      });
    });
  });
})();
