// Draws the time series of a page with uPlot: every element with a
// data-chart attribute holds its data as JSON (written by the server:
// x in Unix seconds, named series, bands between pairs of series).
(function () {
  'use strict';
  const colours = ['#1570ef', '#98a2b3', '#98a2b3', '#dc6803', '#c4c4c4', '#c4c4c4', '#7a5af8'];

  function draw(el) {
    let d;
    try { d = JSON.parse(el.dataset.chart); } catch (e) { return; }
    const width = Math.max(320, Math.min(el.clientWidth || 720, 960));
    const data = [d.x].concat(d.series.map(s => s.y));
    const series = [{}].concat(d.series.map((s, i) => ({
      label: s.label,
      stroke: colours[i % colours.length],
      width: s.dash ? 1 : 2,
      dash: s.dash ? [4, 4] : undefined,
      spanGaps: false,
    })));
    const bands = (d.bands || []).map(b => ({series: [b[1] + 1, b[0] + 1], fill: 'rgba(21,112,239,0.10)'}));
    const opts = {title: d.title, width: width, height: 260, series: series, bands: bands,
      scales: {x: {time: true}}, axes: [{}, {size: 60}]};
    el.textContent = '';
    new uPlot(opts, data, el); // eslint-disable-line no-new, no-undef
  }

  function drawAll() {
    if (typeof uPlot === 'undefined') { return; }
    document.querySelectorAll('[data-chart]').forEach(draw);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', drawAll);
  } else {
    drawAll();
  }
})();
