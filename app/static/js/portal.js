/* Member portal behaviour asked for with data attributes (the Content-Security-Policy runs no inline script):
 *   data-confirm="Question?"  on a button: ask first, and do nothing if the answer is no.
 *   data-copy="#selector"     on a button: copy that input's value to the clipboard, then show data-copied.
 *   data-print                on a button: print the page.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (ev) {
    var target = ev.target instanceof Element ? ev.target.closest("[data-confirm]") : null;
    if (target && !window.confirm(target.getAttribute("data-confirm"))) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  }, true);

  document.addEventListener("click", function (ev) {
    var button = ev.target instanceof Element ? ev.target.closest("[data-copy], [data-print]") : null;
    if (!button) {
      return;
    }
    if (button.hasAttribute("data-print")) {
      window.print();
      return;
    }
    var input = document.querySelector(button.getAttribute("data-copy"));
    if (!input) {
      return;
    }
    var done = function () {
      button.textContent = button.getAttribute("data-copied") || "Copied";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        input.select();
      });
    } else {  // plain http (a local install): select the text so the person can copy it themselves
      input.focus();
      input.select();
      try {
        if (document.execCommand("copy")) {
          done();
        }
      } catch (e) { /* the text stays selected */ }
    }
  });
})();
