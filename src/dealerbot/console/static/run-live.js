document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('live');
  if (!box) return;
  var log = document.getElementById('log'), counts = document.getElementById('counts');
  var es = new EventSource(box.getAttribute('data-events'));
  es.addEventListener('log', function (e) {
    var line = document.createElement('div');
    line.textContent = JSON.parse(e.data);
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
  });
  es.addEventListener('counts', function (e) {
    var c = JSON.parse(e.data), parts = [];
    Object.keys(c).forEach(function (k) { if (c[k]) parts.push(k + ' ' + c[k]); });
    counts.textContent = parts.join(' · ');
  });
  es.addEventListener('done', function () { es.close(); location.reload(); });
});
