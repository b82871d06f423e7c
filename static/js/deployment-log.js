// Keeps a deployment's log scrolled to its newest line as lines arrive (htmx appends them
// to #log-lines), unless the reader has scrolled up to read earlier ones.
(function () {
  "use strict";
  function follow() {
    var box = document.getElementById("log");
    var lines = document.getElementById("log-lines");
    if (!box || !lines) return;
    var pinned = true;
    function atBottom() { return box.scrollHeight - box.scrollTop - box.clientHeight < 24; }
    box.addEventListener("scroll", function () { pinned = atBottom(); });
    new MutationObserver(function () {
      var empty = box.querySelector(".log-empty");
      if (empty) empty.remove();
      if (pinned) box.scrollTop = box.scrollHeight;
    }).observe(lines, { childList: true });
    box.scrollTop = box.scrollHeight;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", follow);
  else follow();
})();
