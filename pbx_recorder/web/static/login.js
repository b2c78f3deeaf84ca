// The login page: JSON to /api/login; when the answer's stage asks for it, the second factor
// (POST /api/login/totp) or, for a role that requires one and has none, its enrolment
// (POST /api/me/totp/enrol, then /api/me/totp/confirm); then to `next` when it is a path on this site.
"use strict";
(function () {
  function local(target) {
    // a path on this origin only: "/x", never "//host", "/\host" or "scheme:"
    if (!target || target.charAt(0) !== "/" || target.charAt(1) === "/" || target.charAt(1) === "\\") {
      return "/";
    }
    var url = new URL(target, window.location.origin);
    return url.origin === window.location.origin ? url.pathname + url.search + url.hash : "/";
  }
  function post(url, csrf, body) {
    var headers = {"Content-Type": "application/json"};
    if (csrf) { headers["X-CSRF-Token"] = csrf; }
    return fetch(url, {method: "POST", credentials: "same-origin", headers: headers,
                       body: JSON.stringify(body || {})});
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("login-form");
    var error = document.getElementById("login-error");
    var totpForm = document.getElementById("totp-form");
    var totpError = document.getElementById("totp-error");
    var next = local(form.getAttribute("data-next"));
    var csrf = "";
    var confirmUrl = "/api/login/totp";

    function askCode(url) {
      confirmUrl = url;
      form.hidden = true;
      totpForm.hidden = false;
      document.getElementById("totp-code").focus();
    }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      post("/api/login", "", {name: document.getElementById("login-name").value,
                              password: document.getElementById("login-password").value})
        .then(function (r) {
          if (!r.ok) { error.hidden = false; return null; }
          return r.json();
        }).then(function (answer) {
          if (!answer) { return; }
          csrf = answer.csrf_token;
          if (answer.stage === "totp") {
            askCode("/api/login/totp");
          } else if (answer.stage === "enrol") {
            post("/api/me/totp/enrol", csrf).then(function (r) {
              if (!r.ok) { error.hidden = false; return null; }
              return r.json();
            }).then(function (started) {
              if (!started) { return; }
              document.getElementById("enrol-secret").textContent = started.secret;
              document.getElementById("enrol-uri").textContent = started.uri;
              document.getElementById("enrol").hidden = false;
              askCode("/api/me/totp/confirm");
            });
          } else {
            window.location.assign(next);
          }
        });
    });
    totpForm.addEventListener("submit", function (event) {
      event.preventDefault();
      totpError.hidden = true;
      post(confirmUrl, csrf, {code: document.getElementById("totp-code").value.trim()})
        .then(function (r) {
          if (r.ok) {
            window.location.assign(next);
          } else {
            totpError.hidden = false;
            document.getElementById("totp-code").value = "";
          }
        });
    });
  });
})();
