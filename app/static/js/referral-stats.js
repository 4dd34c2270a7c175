/* Console referral statistics: referrals recorded and credited per week (Chart.js, vendored).
 * The figures come from the page's #referral-weeks-data JSON; the same numbers are in the table under the chart.
 * An external file, not an inline script: the Content-Security-Policy runs only this site's own files. */
(function () {
  "use strict";

  var source = document.getElementById("referral-weeks-data");
  var canvas = document.getElementById("chart-weeks");
  if (!source || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: "Recorded", data: data.recorded, backgroundColor: "#17a2b8" },
        { label: "Credited", data: data.credited, backgroundColor: "#28a745" }
      ]
    },
    options: { maintainAspectRatio: false, plugins: { legend: { position: "bottom" } },
               scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
  });
})();
