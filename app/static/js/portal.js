/* Member portal behaviour asked for with data attributes (the Content-Security-Policy runs no inline script):
 *   data-confirm="Question?"  on a button: ask first, and do nothing if the answer is no.
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
})();
