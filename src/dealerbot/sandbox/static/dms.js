// Contract form of the sandbox DMS: customer pick-up dialog and save confirmation.
(function () {
  'use strict';
  function $(id) { return document.getElementById(id); }
  var form = $('contract-form') || $('sales-contract-form');  // (dms_form_changed: the new ids)
  if (!form) return;
  var dialog = $('customer-dialog');
  var tbody = document.querySelector('#customer-dialog-table tbody');

  function search() {
    var q = $('customer-dialog-q').value;
    tbody.innerHTML = '';
    $('customer-dialog-empty').style.display = 'none';
    fetch('/api/customers?q=' + encodeURIComponent(q), {credentials: 'same-origin'})
      .then(function (r) {
        if (r.status === 401) { location.href = '/login?expired=1&next=' + encodeURIComponent(location.pathname); throw new Error('redirect'); }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (rows) {
        rows.forEach(function (c) {
          var tr = document.createElement('tr');
          tr.className = 'pick-row';
          tr.setAttribute('data-customer-no', c.customer_no);
          [['customer_no', c.customer_no], ['name', c.name], ['mobile', c.mobile], ['id_number', c.id_number]].forEach(function (p) {
            var td = document.createElement('td');
            td.setAttribute('data-field', p[0]);
            td.textContent = p[1];
            tr.appendChild(td);
          });
          var td = document.createElement('td');
          var b = document.createElement('button');
          b.type = 'button';
          b.className = 'pick';
          b.textContent = '选择';
          b.addEventListener('click', function () {
            ($('customer_no') || $('cust_no')).value = c.customer_no;
            $('customer-display').textContent = c.name + '（' + c.customer_no + '）';
            dialog.style.display = 'none';
          });
          td.appendChild(b);
          tr.appendChild(td);
          tbody.appendChild(tr);
        });
        if (!rows.length) $('customer-dialog-empty').style.display = '';
      })
      .catch(function () {});
  }

  $('customer-pick').addEventListener('click', function () { dialog.style.display = ''; $('customer-dialog-q').focus(); });
  $('customer-dialog-search').addEventListener('click', search);
  $('customer-dialog-q').addEventListener('keydown', function (e) { if (e.key === 'Enter') { e.preventDefault(); search(); } });
  $('customer-dialog-close').addEventListener('click', function () { dialog.style.display = 'none'; });

  function confirmShow(show) {
    $('confirm-dialog').style.display = show ? '' : 'none';
    $('confirm-overlay').style.display = show ? '' : 'none';
  }
  $('save').addEventListener('click', function () { confirmShow(true); });
  $('confirm-cancel').addEventListener('click', function () { confirmShow(false); });
  $('confirm-ok').addEventListener('click', function () { confirmShow(false); form.submit(); });
  form.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && e.target.tagName === 'INPUT') { e.preventDefault(); confirmShow(true); }
  });
})();
