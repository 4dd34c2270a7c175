/* Staff console behaviour asked for with data attributes.
 *
 * The Content-Security-Policy (app/headers.py) runs no inline script and no
 * on...= attribute, so templates say what they want instead:
 *   data-confirm="Question?"        on a button or link: ask first, stop if refused;
 *   data-autosubmit                 on a select: submit its form when it changes;
 *   data-model-action="name"        Flask-Admin's "With selected" menu (templates/admin/actions.html).
 * Links with href="javascript:void(0)" (Flask-Admin's menus and filters) never navigate.
 * Clicks are looked at while they go down to their target (capture), because some of
 * Flask-Admin's handlers stop them on the way back up.
 */
(function () {
  "use strict";

  document.addEventListener("click", function (ev) {
    var target = ev.target instanceof Element ? ev.target : null;
    if (!target) return;
    var asking = target.closest("[data-confirm]");
    if (asking && !window.confirm(asking.getAttribute("data-confirm"))) {
      ev.preventDefault();
      ev.stopPropagation();
      return;
    }
    var action = target.closest("[data-model-action]");
    if (action && window.modelActions) {
      ev.preventDefault();
      window.modelActions.execute(action.getAttribute("data-model-action"));
      return;
    }
    var link = target.closest("a[href]");
    if (link && link.getAttribute("href").trim().toLowerCase().indexOf("javascript:") === 0) {
      ev.preventDefault();
    }
  }, true);

  document.addEventListener("change", function (ev) {
    var field = ev.target;
    if (field instanceof Element && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });
})();
