// 状态: a page check takes a while (a browser logs in to the portal): say so while it runs.
document.querySelectorAll("form.selectors-check").forEach(function (form) {
  form.addEventListener("submit", function () {
    var button = form.querySelector("button");
    setTimeout(function () { button.disabled = true; button.textContent = "正在检查，请稍候（约半分钟）…"; }, 0);
  });
});
