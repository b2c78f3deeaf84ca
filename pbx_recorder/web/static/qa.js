// QA review and tags: assignments, scorecards, reviews, the tag vocabulary, a call's tags and
// bulk tagging from a search.  Every write goes through window.pbxr.send (the session's CSRF
// token); the service decides and audits.  Texts from the service are set with textContent.
"use strict";
(function () {
  function $(id) { return document.getElementById(id); }
  function each(selector, fn) { Array.prototype.forEach.call(document.querySelectorAll(selector), fn); }
  function enc(value) { return encodeURIComponent(value); }

  // the answer's error text in the status line (and the element given), or a reload when done
  function settle(promise, errorBox) {
    return promise.then(function (r) {
      if (r.ok) { window.location.reload(); return; }
      return r.json().catch(function () { return {}; }).then(function (data) {
        var status = $("qa-status");
        var text = (status ? status.getAttribute("data-failed") : "Refused") + " (" + r.status + ")" +
                   (data.error ? ": " + data.error : "");
        if (status) { status.textContent = text; }
        if (errorBox) { errorBox.textContent = text; }
      });
    });
  }

  function onSubmit(id, fn) {
    var form = $(id);
    if (form) { form.addEventListener("submit", function (event) { event.preventDefault(); fn(form); }); }
  }

  function assignments() {
    onSubmit("qa-assign-form", function () {
      settle(window.pbxr.send("POST", "/api/calls/" + enc($("qa-assign-call").value.trim()) + "/qa-assignments",
                              {reviewer: $("qa-assign-reviewer").value}));
    });
    each(".qa-unassign", function (button) {
      button.addEventListener("click", function () {
        settle(window.pbxr.send("DELETE", "/api/calls/" + enc(button.getAttribute("data-call-id")) +
                                "/qa-assignments/" + enc(button.getAttribute("data-reviewer"))));
      });
    });
  }

  function vocabulary() {
    onSubmit("tag-add-form", function () {
      settle(window.pbxr.send("POST", "/api/tags", {tag: $("tag-new").value.trim(), kind: $("tag-new-kind").value,
                                                    label_en: $("tag-new-en").value, label_zh: $("tag-new-zh").value}));
    });
    each(".tag-retire", function (button) {
      button.addEventListener("click", function () {
        settle(window.pbxr.send("POST", "/api/tags/" + enc(button.getAttribute("data-tag")) + "/retire"));
      });
    });
  }

  function scorecards() {
    var add = $("card-add-criterion");
    if (add) {
      add.addEventListener("click", function () {
        var rows = document.querySelectorAll("#card-criteria .criterion-input");
        var copy = rows[0].cloneNode(true);
        Array.prototype.forEach.call(copy.querySelectorAll(".c-key, .c-label"), function (i) { i.value = ""; });
        rows[rows.length - 1].parentNode.appendChild(copy);
      });
    }
    onSubmit("card-form", function () {
      var criteria = [];
      each("#card-criteria .criterion-input", function (row) {
        var key = row.querySelector(".c-key").value.trim();
        if (!key && !row.querySelector(".c-label").value.trim()) { return; }
        var item = {key: key, label: row.querySelector(".c-label").value, kind: row.querySelector(".c-kind").value,
                    weight: Number(row.querySelector(".c-weight").value)};
        if (item.kind === "scale") { item.max = Number(row.querySelector(".c-max").value); }
        criteria.push(item);
      });
      settle(window.pbxr.send("POST", "/api/qa/scorecards", {name: $("card-name").value, criteria: criteria}),
             $("card-error"));
    });
    each(".card-retire", function (button) {
      button.addEventListener("click", function () {
        settle(window.pbxr.send("POST", "/api/qa/scorecards/" + enc(button.getAttribute("data-scorecard")) + "/retire"));
      });
    });
  }

  function reviewBody(form) {
    var answers = {};
    Array.prototype.forEach.call(form.querySelectorAll(".answer"), function (select) {
      var v = select.value;
      if (v === "") { return; }
      answers[select.getAttribute("data-key")] = select.getAttribute("data-kind") === "yesno" ? v === "yes" : Number(v);
    });
    var comments = [];
    Array.prototype.forEach.call(form.querySelectorAll(".kept-comment"), function (li) {
      var mark = li.getAttribute("data-mark-id");
      if (mark) { comments.push({text: li.getAttribute("data-text"), mark_id: Number(mark)}); }
    });
    var text = form.querySelector(".comment-text").value;
    if (text.trim()) {
      var anchor = form.querySelector(".comment-anchor").value;
      if (anchor.indexOf("mark:") === 0) {
        comments.push({text: text, mark_id: Number(anchor.slice(5))});
      } else if (anchor.indexOf("rec:") === 0) {
        comments.push({text: text, recording_id: anchor.slice(4),
                       position_s: Number(form.querySelector(".comment-position").value || 0)});
      }
    }
    return {answers: answers, comments: comments};
  }

  function reviews() {
    each(".review-form", function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var body = reviewBody(form);
        var review = form.getAttribute("data-review");
        if (review) {
          settle(window.pbxr.send("PUT", "/api/qa/reviews/" + enc(review), body));
        } else {
          body.scorecard_id = Number(form.getAttribute("data-scorecard"));
          settle(window.pbxr.send("POST", "/api/calls/" + enc(form.getAttribute("data-call-id")) + "/reviews", body));
        }
      });
    });
  }

  function changeOf(addId, removeId) {
    var add = $(addId).value, remove = $(removeId).value;
    return {add: add ? [add] : [], remove: remove ? [remove] : []};
  }

  function callTags() {
    onSubmit("call-tag-form", function (form) {
      settle(window.pbxr.send("POST", "/api/calls/" + enc(form.getAttribute("data-call-id")) + "/tags",
                              changeOf("call-tag-add", "call-tag-remove")));
    });
  }

  function bulkTags() {
    onSubmit("bulk-tag-form", function (form) {
      var status = $("bulk-status");
      var body = changeOf("bulk-tag-add", "bulk-tag-remove");
      var url = "/api/tags/bulk";
      if ($("bulk-filter").checked) {
        url += "?" + form.getAttribute("data-query");
      } else {
        body.call_ids = [];
        each(".bulk-call", function (box) { if (box.checked) { body.call_ids.push(box.value); } });
      }
      function report(r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (r.status === 409 && data.count !== undefined && body.expect === undefined) {
            if (!window.confirm(form.getAttribute("data-confirm") + " " + data.count)) { return; }
            body.expect = data.count;
            return window.pbxr.send("POST", url, body).then(report);
          }
          status.textContent = r.ok ? form.getAttribute("data-done") + " " + data.changed
            : form.getAttribute("data-failed") + " (" + r.status + ")" + (data.error ? ": " + data.error : "");
        });
      }
      window.pbxr.send("POST", url, body).then(report);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    assignments();
    vocabulary();
    scorecards();
    reviews();
    callTags();
    bulkTags();
  });
})();
