// A form whose 保存/提交 button opens a confirm dialog (#confirm-dialog) first: the DMS's 交车登记
// and the OEM portal's 交车上报. The form posts normally once 确定 is clicked.
(function () {
  'use strict';
  function $(id) { return document.getElementById(id); }
  var form = document.querySelector('form[data-confirm]');
  if (!form) return;
  var button = $(form.getAttribute('data-confirm'));
  function show(on) {
    $('confirm-dialog').style.display = on ? '' : 'none';
    $('confirm-overlay').style.display = on ? '' : 'none';
  }
  button.addEventListener('click', function () { show(true); });
  $('confirm-cancel').addEventListener('click', function () { show(false); });
  $('confirm-ok').addEventListener('click', function () { show(false); form.submit(); });
  form.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && e.target.tagName === 'INPUT') { e.preventDefault(); show(true); }
  });
})();
