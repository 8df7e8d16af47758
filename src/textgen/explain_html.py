"""An `Explanation` as one self-contained HTML page: the text coloured by surprisal.

The page behind ``textgen explain --html``. Everything is inline (styles, a short script and
the explanation as JSON), so the file opens from disk in any browser, offline, and can be sent
as one attachment. Each token is a ``<span>`` whose background grows redder with its surprisal;
hovering or clicking one shows its surprisal and top alternatives in a side panel and shades
the preceding context blue by saliency (normalised to the token's largest value). A click pins
the selection; Escape or a second click releases it.
"""

from __future__ import annotations

import html
import json

from textgen.explain import Explanation

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
#text { flex: 3; padding: 1.5em; overflow: auto; white-space: pre-wrap;
        font-family: ui-monospace, monospace; }
#panel { flex: 1; min-width: 16em; padding: 1.5em; border-left: 1px solid #ccc;
         background: #fafafa; overflow: auto; }
#text span { cursor: pointer; border-radius: 2px; }
#text span.current { outline: 2px solid #000; }
table { border-collapse: collapse; } td { padding: 0 .6em 0 0; }
.muted { color: #777; }
"""

_SCRIPT = """
const data = JSON.parse(document.getElementById("explanation").textContent);
const textBox = document.getElementById("text");
const details = document.getElementById("details");
const SCALE = Math.log(64);  // surprisal (nats) shown at full red
let pinned = null;
const spans = data.tokens.map((token) => {
  const span = document.createElement("span");
  span.textContent = token.token;
  span.dataset.index = token.index;
  span.addEventListener("mouseenter", () => { if (pinned === null) show(token.index); });
  span.addEventListener("click", () => {
    pinned = pinned === token.index ? null : token.index;
    show(token.index);
  });
  textBox.appendChild(span);
  return span;
});
function surprisalColour(s) {
  const a = s === null ? 0 : Math.min(1, s / SCALE);
  return `rgba(220, 40, 40, ${(0.75 * a).toFixed(3)})`;
}
function reset() {
  data.tokens.forEach((token, i) => {
    spans[i].style.background = surprisalColour(token.surprisal);
    spans[i].classList.remove("current");
    delete spans[i].dataset.saliency;
  });
}
function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }
function show(index) {
  reset();
  const token = data.tokens[index];
  const saliency = token.saliency;
  const first = index - saliency.length;
  const peak = Math.max(1e-30, ...saliency);
  saliency.forEach((value, k) => {
    const span = spans[first + k];
    span.dataset.saliency = value;
    span.style.background = `rgba(40, 90, 220, ${(0.8 * value / peak).toFixed(3)})`;
  });
  spans[index].classList.add("current");
  details.replaceChildren();
  const heading = document.createElement("h3");
  heading.textContent = `token ${index}: ${JSON.stringify(token.token)}`;
  details.appendChild(heading);
  const summary = document.createElement("p");
  summary.id = "surprisal";
  summary.textContent = token.surprisal === null
    ? "first token: nothing predicts it"
    : `surprisal ${token.surprisal.toFixed(3)} nats (${(token.surprisal / Math.LN2).toFixed(2)} bits)`;
  details.appendChild(summary);
  if (token.top.length) {
    const table = document.createElement("table");
    table.id = "top";
    token.top.forEach((alt) => {
      const row = document.createElement("tr");
      row.append(cell(JSON.stringify(alt.token)), cell((100 * alt.probability).toFixed(1) + "%"));
      table.appendChild(row);
    });
    const label = document.createElement("p");
    label.textContent = "top alternatives:";
    details.append(label, table);
  }
  if (saliency.length) {
    const ranked = saliency.map((v, k) => [v, first + k]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    const note = document.createElement("p");
    note.id = "salient";
    note.textContent = "most salient context: " + ranked.map(
      ([v, j]) => `${JSON.stringify(data.tokens[j].token)}@${j} (${v.toPrecision(3)})`).join(", ");
    details.appendChild(note);
  }
}
document.addEventListener("keydown", (e) => { if (e.key === "Escape") { pinned = null; reset(); } });
reset();
"""


def explanation_html(explanation: Explanation, *, title: str = "textgen explain") -> str:
    """One self-contained HTML page (no network access) drawing ``explanation``.

    Args:
        explanation: what `textgen.explain.explain` returned.
        title: the page title.

    Returns:
        The page as a string; write it with ``encoding="utf-8"``.
    """
    payload = json.dumps(explanation.to_dict(), ensure_ascii=True)
    # Inside <script> only "</" can end the element early; JSON allows "<\\/" for it.
    payload = payload.replace("</", "<\\/")
    mean = explanation.mean_surprisal
    summary = (
        "one token: nothing to predict"
        if mean is None
        else f"mean surprisal {mean:.4f} nats/token, {explanation.bits_per_char:.4f} bits/char; "
        f"saliency window {explanation.window}"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<div id="text"></div>
<div id="panel">
<p class="muted">{html.escape(summary)}</p>
<p class="muted">Red: surprisal. Hover or click a token: blue shows the saliency of the
preceding context (gradient norm of its log-probability with respect to each input
embedding). Click pins a token, Escape releases it.</p>
<div id="details"></div>
</div>
<script type="application/json" id="explanation">{payload}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


__all__ = ["explanation_html"]
