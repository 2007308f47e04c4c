/* What a reviewer checks by eye, run in the page by tests/browser.py: sideways scrolling,
   unlabelled form fields, text contrast under WCAG AA (4.5:1, 3:1 for large text). */
function luminance(rgb) {
  var c = rgb.map(function (v) { v = v / 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function parse(color) {
  var m = color.match(/rgba?\(([^)]+)\)/);
  if (!m) { return null; }
  var p = m[1].split(",").map(function (s) { return parseFloat(s); });
  return { rgb: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 };
}
function background(el) {
  while (el && el.nodeType === 1) {
    var bg = parse(getComputedStyle(el).backgroundColor);
    if (bg && bg.a > 0.5) { return bg.rgb; }
    el = el.parentElement;
  }
  return [255, 255, 255];
}
var problems = [];
var doc = document.documentElement;
if (doc.scrollWidth > window.innerWidth + 1) {
  problems.push("wider than the screen: " + doc.scrollWidth + " > " + window.innerWidth);
}
document.querySelectorAll("input, select, textarea").forEach(function (f) {
  if (f.type === "hidden" || f.offsetParent === null && f.type !== "file") { return; }
  var named = f.getAttribute("aria-label") || f.getAttribute("aria-labelledby") ||
    (f.id && document.querySelector('label[for="' + f.id + '"]')) || f.closest("label");
  if (!named) { problems.push("unlabelled field: " + (f.name || f.id || f.outerHTML.slice(0, 80))); }
});
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
var seen = new Set();
while (walker.nextNode()) {
  var node = walker.currentNode;
  if (!node.textContent.trim()) { continue; }
  var el = node.parentElement;
  if (!el || seen.has(el) || el.offsetParent === null || el.closest("svg, .sr-only, .skip")) { continue; }
  seen.add(el);
  var style = getComputedStyle(el);
  var fg = parse(style.color);
  if (!fg) { continue; }
  var l1 = luminance(fg.rgb), l2 = luminance(background(el));
  var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  var size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
  var need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  if (ratio < need) {
    problems.push("contrast " + ratio.toFixed(2) + " < " + need + ": " + node.textContent.trim().slice(0, 40));
  }
}
return problems;
