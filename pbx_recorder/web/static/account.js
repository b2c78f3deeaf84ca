// My account: enrol a second factor (the secret is shown once, the first code activates it).
"use strict";
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var start = document.getElementById("totp-start");
    if (!start) { return; }
    var error = document.getElementById("totp-error");
    start.addEventListener("click", function () {
      error.hidden = true;
      window.pbxr.send("POST", "/api/me/totp/enrol").then(function (r) {
        if (!r.ok) { error.hidden = false; return null; }
        return r.json();
      }).then(function (started) {
        if (!started) { return; }
        document.getElementById("enrol-secret").textContent = started.secret;
        document.getElementById("enrol-uri").textContent = started.uri;
        document.getElementById("totp-setup").hidden = false;
        start.hidden = true;
      });
    });
    document.getElementById("totp-confirm").addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      window.pbxr.send("POST", "/api/me/totp/confirm",
                       {code: document.getElementById("totp-code").value.trim()}).then(function (r) {
        if (r.ok) {
          document.getElementById("totp-setup").hidden = true;
          document.getElementById("totp-done").hidden = false;
        } else {
          error.hidden = false;
        }
      });
    });
  });
})();
