/* Console dues report: the amount completed per month, one chart per currency, a stacked series per unit
 * (Chart.js, vendored). The figures come from the page's #dues-report-data JSON (amounts in minor units);
 * the same numbers are in the table under the charts.
 * An external file, not an inline script: the Content-Security-Policy runs only this site's own files. */
(function () {
  "use strict";

  var source = document.getElementById("dues-report-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var colours = ["#007bff", "#28a745", "#fd7e14", "#6f42c1", "#17a2b8", "#e83e8c", "#ffc107", "#6c757d"];

  function money(minor, currency) {
    return (minor / 100).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) +
      " " + currency;
  }

  data.currencies.forEach(function (chart) {
    var canvas = document.querySelector('canvas[data-chart-currency="' + chart.currency + '"]');
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: chart.series.map(function (s, i) {
          return { label: s.label, data: s.data.map(function (m) { return m / 100; }),
                   backgroundColor: colours[i % colours.length] };
        })
      },
      options: {
        maintainAspectRatio: false,
        plugins: {
          legend: { position: "bottom" },
          tooltip: { callbacks: { label: function (ctx) {
            return ctx.dataset.label + ": " + money(chart.series[ctx.datasetIndex].data[ctx.dataIndex], chart.currency);
          }, footer: function (items) {
            return items.length ? "Month: " + money(chart.totals[items[0].dataIndex], chart.currency) : "";
          } } }
        },
        scales: { x: { stacked: true },
                  y: { stacked: true, beginAtZero: true, title: { display: true, text: chart.currency } } }
      }
    });
  });
})();
