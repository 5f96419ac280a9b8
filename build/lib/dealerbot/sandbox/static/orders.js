// Orders list of the sandbox OEM portal: fills #orders-table from /api/orders.
(function () {
  'use strict';
  var form = document.getElementById('order-filter');
  var tbody = document.querySelector('#orders-table tbody');
  var loading = document.getElementById('orders-loading');
  var errorBox = document.getElementById('orders-error');
  var prev = document.getElementById('pager-prev');
  var next = document.getElementById('pager-next');
  var info = document.getElementById('pager-info');
  var exportLink = document.getElementById('export-xlsx');
  var dirInput = document.getElementById('filter-dir');
  var qs = new URLSearchParams(location.search);
  var page = parseInt(qs.get('page') || '1', 10) || 1;
  var pages = 1;
  var seq = 0;

  function filters() {
    var p = new URLSearchParams();
    var df = document.getElementById('filter-date-from').value;
    var dt = document.getElementById('filter-date-to').value;
    var st = document.getElementById('filter-status').value;
    if (df) p.set('date_from', df);
    if (dt) p.set('date_to', dt);
    if (st) p.set('status', st);
    p.set('sort', 'updated_at');
    p.set('dir', dirInput.value === 'asc' ? 'asc' : 'desc');
    return p;
  }

  function cell(tr, text, field) {
    var td = document.createElement('td');
    td.textContent = text == null ? '' : text;
    if (field) td.setAttribute('data-field', field);
    tr.appendChild(td);
    return td;
  }

  function load() {
    var my = ++seq;
    var p = filters();
    exportLink.href = '/orders/export.xlsx?' + p.toString();
    p.set('page', String(page));
    p.set('page_size', '20');
    history.replaceState(null, '', '/orders?' + p.toString());
    loading.style.display = '';
    errorBox.style.display = 'none';
    tbody.innerHTML = '';
    prev.disabled = true;
    next.disabled = true;
    fetch('/api/orders?' + p.toString(), {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
      .then(function (r) {
        if (r.status === 401) {
          location.href = '/login?expired=1&next=' + encodeURIComponent(location.pathname + location.search);
          throw new Error('redirect');
        }
        if (!r.ok) {
          return r.json().catch(function () { return {}; }).then(function (j) {
            throw new Error(j.message || ('加载失败（HTTP ' + r.status + '）'));
          });
        }
        return r.json();
      })
      .then(function (data) {
        if (my !== seq) return;
        pages = data.pages;
        data.items.forEach(function (o) {
          var tr = document.createElement('tr');
          tr.className = 'order-row';
          tr.setAttribute('data-order-no', o.order_no);
          var td = cell(tr, '', 'order_no');
          var a = document.createElement('a');
          a.className = 'order-link';
          a.href = '/orders/' + encodeURIComponent(o.order_no);
          a.textContent = o.order_no;
          td.appendChild(a);
          cell(tr, o.customer_name, 'customer_name');
          cell(tr, o.model_code, 'model_code');
          cell(tr, o.color, 'color');
          cell(tr, o.status, 'status');
          cell(tr, o.planned_delivery_date, 'planned_delivery_date');
          cell(tr, (o.updated_at || '').replace('T', ' '), 'updated_at');
          tbody.appendChild(tr);
        });
        if (!data.items.length) {
          var tr = document.createElement('tr');
          var td = cell(tr, '没有符合条件的订单');
          td.colSpan = 7;
          td.id = 'orders-empty';
          tbody.appendChild(tr);
        }
        info.textContent = '第 ' + data.page + '/' + data.pages + ' 页，共 ' + data.total + ' 条';
        prev.disabled = data.page <= 1;
        next.disabled = data.page >= data.pages;
        loading.style.display = 'none';
      })
      .catch(function (e) {
        if (my !== seq || e.message === 'redirect') return;
        loading.style.display = 'none';
        errorBox.textContent = e.message || '加载失败';
        errorBox.style.display = '';
      });
  }

  form.addEventListener('submit', function (ev) { ev.preventDefault(); page = 1; load(); });
  prev.addEventListener('click', function () { if (page > 1) { page--; load(); } });
  next.addEventListener('click', function () { if (page < pages) { page++; load(); } });
  document.getElementById('sort-updated-at').addEventListener('click', function (ev) {
    ev.preventDefault();
    dirInput.value = dirInput.value === 'asc' ? 'desc' : 'asc';
    document.getElementById('sort-indicator').textContent = dirInput.value === 'asc' ? '↑' : '↓';
    page = 1;
    load();
  });
  load();
})();
