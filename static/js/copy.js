// Copy-to-clipboard buttons: <button data-copy="ID" hidden>Copy</button> copies the text of
// the element with that id. The buttons stay hidden where the Clipboard API is missing
// (plain HTTP, old browsers), and are found again after htmx swaps a partial in.
(function () {
  "use strict";

  function reveal(root) {
    if (!navigator.clipboard) return;
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(
      function () {
        var label = button.dataset.label || (button.dataset.label = button.textContent);
        button.textContent = "Copied";
        window.setTimeout(function () {
          button.textContent = label;
        }, 2000);
      },
      function () {
        button.textContent = "Copy failed";
      }
    );
  });

  document.addEventListener("DOMContentLoaded", function () {
    reveal(document);
  });
  document.addEventListener("htmx:afterSwap", function () {
    reveal(document);
  });
})();
