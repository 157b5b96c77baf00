// Optional: click a column heading of a sortable table to sort its runs (the page reads the same without it).
"use strict";
// The cell under a heading: a sweep's row has one cell spanning the five tables' columns.
function cellAt(row, column) {
  for (var i = 0, end = 0; i < row.children.length; i++) {
    end += row.children[i].colSpan || 1;
    if (end > column) return row.children[i];
  }
  return null;
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  var body = table.querySelector("tbody.runs");
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.setAttribute("aria-sort", "none");
    th.addEventListener("click", function () {
      var down = th.getAttribute("aria-sort") === "ascending";
      var key = function (row) {
        var cell = cellAt(row, column);
        var text = cell ? cell.textContent.trim() : "";
        var number = parseFloat(text);
        return isNaN(number) ? text.toLowerCase() : number;
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return down ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      table.querySelectorAll("thead th").forEach(function (other) { other.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
    });
  });
});
