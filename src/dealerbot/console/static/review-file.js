// 审核: the upload's own Chinese button (the browser's file input, hidden, would say "Choose File"
// in the browser's language); the chosen workbook's name shown beside it.
(function () {
  var input = document.getElementById("review-file");
  var name = document.getElementById("review-file-name");
  if (!input || !name) return;
  input.addEventListener("change", function () {
    name.textContent = input.files && input.files.length ? input.files[0].name : "未选择文件";
  });
})();
