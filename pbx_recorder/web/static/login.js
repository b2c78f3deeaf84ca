// The login page: JSON to /api/login, then to `next` when it is a path on this site.
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
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("login-form");
    var error = document.getElementById("login-error");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      fetch("/api/login", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({name: document.getElementById("login-name").value,
                              password: document.getElementById("login-password").value})
      }).then(function (r) {
        if (r.ok) {
          window.location.assign(local(form.getAttribute("data-next")));
        } else {
          error.hidden = false;
        }
      });
    });
  });
})();
