// The search page: saved searches (save the current URL's filter under a name, delete one).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var save = document.getElementById("saved-save");
  if (save) {
    save.addEventListener("click", function () {
      var name = document.getElementById("saved-name").value.trim();
      if (!name) { return; }
      var query = new URLSearchParams(new FormData(document.getElementById("search-form"))).toString();
      window.pbxr.send("POST", "/api/searches", {name: name, query: query}).then(function (r) {
        if (r.ok) { window.location.reload(); }
      });
    });
  }
  document.querySelectorAll(".saved-delete").forEach(function (button) {
    button.addEventListener("click", function () {
      var url = "/api/searches/" + encodeURIComponent(button.getAttribute("data-name"));
      window.pbxr.send("DELETE", url).then(function (r) {
        if (r.ok) { window.location.reload(); }
      });
    });
  });
  // the ticked calls of this page, to export their recordings or to ask for their deletion
  document.querySelectorAll(".selection-go").forEach(function (button) {
    button.addEventListener("click", function () {
      var ids = [];
      document.querySelectorAll(".bulk-call").forEach(function (box) { if (box.checked) { ids.push(box.value); } });
      var status = document.getElementById("selection-status");
      if (!ids.length) { status.textContent = status.getAttribute("data-none"); return; }
      window.location.assign(button.getAttribute("data-href") + "?calls=" + encodeURIComponent(ids.join(",")));
    });
  });
});
