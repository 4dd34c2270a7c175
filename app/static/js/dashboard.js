/* Console dashboard charts (Chart.js, vendored); the figures come from the page's #dash-data JSON. */
(function () {
  "use strict";

  var source = document.getElementById("dash-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var statusColours = ["#ffc107", "#28a745", "#dc3545", "#6c757d", "#adb5bd", "#343a40", "#a71d2a"];
  var statusCanvas = document.getElementById("chart-status");
  if (statusCanvas) {
    new Chart(statusCanvas, {
      type: "doughnut",
      data: { labels: data.status.labels, datasets: [{ data: data.status.values, backgroundColor: statusColours }] },
      options: { maintainAspectRatio: false, plugins: { legend: { position: "right" } } }
    });
  }
  var monthsCanvas = document.getElementById("chart-months");
  if (monthsCanvas) {
    new Chart(monthsCanvas, {
      type: "bar",
      data: { labels: data.months.labels, datasets: [{ label: "Joined", data: data.months.values, backgroundColor: "#007bff" }] },
      options: { maintainAspectRatio: false, plugins: { legend: { display: false } },
                 scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
  }
})();
