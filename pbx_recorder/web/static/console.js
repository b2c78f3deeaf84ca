// The console's shared script: CSRF on every state-changing fetch, the language switch, logout.
"use strict";
(function () {
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  // fetch with the session's CSRF token on every POST/PUT/DELETE (JSON body when given one)
  function send(method, url, body) {
    var headers = {"X-CSRF-Token": csrf()};
    var init = {method: method, headers: headers, credentials: "same-origin"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init);
  }
  // an admin page's status line (its data-done / data-failed texts, the refusal's reason)
  function status(id, ok, text) {
    var el = document.getElementById(id);
    el.textContent = ok ? el.getAttribute("data-done") : el.getAttribute("data-failed") + " " + text;
  }
  window.pbxr = {send: send, csrf: csrf, status: status};
  document.addEventListener("DOMContentLoaded", function () {
    var lang = document.getElementById("lang-switch");
    if (lang) {
      lang.addEventListener("change", function () {
        send("POST", "/api/me/lang", {lang: lang.value}).then(function (r) {
          if (r.ok) { window.location.reload(); }
        });
      });
    }
    var logout = document.getElementById("logout");
    if (logout) {
      logout.addEventListener("click", function () {
        send("POST", "/api/logout").then(function () { window.location.assign("/login"); });
      });
    }
  });
})();
