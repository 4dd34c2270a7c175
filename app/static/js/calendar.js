/* The events calendar (FullCalendar, vendored): month, week and list views of the feed in #calendar's data-feed. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  var el = document.getElementById("calendar");
  if (!el || typeof FullCalendar === "undefined") return;
  var calendar = new FullCalendar.Calendar(el, {
    initialView: window.innerWidth < 768 ? "listMonth" : "dayGridMonth",
    headerToolbar: { left: "prev,next today", center: "title", right: "dayGridMonth,timeGridWeek,listMonth" },
    timeZone: "UTC",  // the feed sends the organisation's wall-clock times
    firstDay: 1,
    nowIndicator: true,
    height: "auto",
    eventTimeFormat: { hour: "2-digit", minute: "2-digit", hour12: false },
    events: {
      url: el.dataset.feed,
      failure: function () {
        el.insertAdjacentHTML("beforebegin", '<div class="alert alert-danger">The events could not be loaded.</div>');
      }
    }
  });
  calendar.render();
  window.musterCalendar = calendar;
});
