// A live run's page: the progress bar (n of N, time left), its counts under Chinese labels and
// the log (folded), fed by the run's server-sent events; the page reloads when the run ends.
document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('live');
  if (!box) return;
  var log = document.getElementById('log'), counts = document.getElementById('counts');
  var bar = document.getElementById('bar'), text = document.getElementById('progress-text');
  var es = new EventSource(box.getAttribute('data-events'));
  es.addEventListener('log', function (e) {
    var line = document.createElement('div');
    line.textContent = JSON.parse(e.data);
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
  });
  es.addEventListener('counts', function (e) {
    var p = JSON.parse(e.data);
    if (p.total) {
      bar.max = p.total;
      bar.value = p.done;
      text.textContent = p.done + ' / ' + p.total + (p.left ? ' · 剩余' + p.left : '');
    } else {
      bar.removeAttribute('value');
      text.textContent = '已处理 ' + p.done;
    }
    counts.textContent = p.items.map(function (i) { return i[0] + ' ' + i[1]; }).join(' · ') || '运行中…';
  });
  // The run's login waits for a person (an SMS code, a captcha): the page shows the box for it.
  es.addEventListener('ask', function (e) {
    var shown = document.getElementById('login-help');
    if (!shown || shown.getAttribute('data-ask') !== JSON.parse(e.data).key) { es.close(); location.reload(); }
  });
  es.addEventListener('done', function () { es.close(); location.reload(); });
  // Refused for good (the login ended: a 401): the page itself leads to the login, saying so.
  es.onerror = function () { if (es.readyState === EventSource.CLOSED) location.reload(); };
});
