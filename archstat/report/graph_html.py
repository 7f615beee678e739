"""The layer DAG as one interactive, self-contained HTML page (``archstat graph MODEL -o g.html``):
what netscope gives Caffe users, offline.

The boxes and edges are the picture's own (:mod:`.graph_layout` places them, with the box
sizes :mod:`.graph_draw` measures), drawn as inline SVG; a small inline script pans (drag),
zooms (wheel, buttons, keys), fits the view, finds a layer by name, and shows each box's
numbers on hover and, pinned, on click: type, output shape, parameters, MACs, FLOPs, output
memory and receptive field, per layer for a box that holds several. No file, font or script
is fetched: the page works from a USB stick.

The numbers travel as one JSON payload (:func:`graph_payload`), which the tests read.
"""
from __future__ import annotations

import html
import json
from typing import Any, Mapping

from .units import shape_str

PX = 96.0   # SVG pixels per inch of the layout


def _rf(value) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


def _layer_info(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], "type": row["type"], "output": shape_str(row["output_shape"]),
            "params": row["params"], "macs": row["macs"], "flops": row["flops"],
            "memory": row["activation_bytes"], "rf": _rf(row["rf_size"]), "rf_stride": _rf(row["rf_stride"]),
            "training_only": bool(row["training_only"])}


def graph_payload(drawing: Any, analysis: Any) -> dict[str, Any]:
    """Plain data of the page: the boxes (position, size, label lines, summed numbers, the
    layers inside with their own), the edges, the totals. Positions are SVG pixels."""
    rows = {r["name"]: r for r in analysis.rows()}
    lay = drawing.layout
    nodes = []
    for key, (x, y, w) in lay.boxes.items():
        ghost = isinstance(key, tuple)
        name = key[2] if ghost else key
        node = drawing.nodes[name]
        members = [_layer_info(rows[m]) for m in node.members]
        summed = {k: sum(m[k] for m in members) for k in ("params", "macs", "flops", "memory")}
        last = members[-1]
        nodes.append({"id": name, "ghost": ghost, "x": round(x * PX, 2), "y": round(y * PX, 2),
                      "w": round(w * PX, 2), "h": round(lay.box_height * PX, 2),
                      "lines": [[text, role] for text, role in drawing.lines[name]],
                      "title": node.title, "type": node.type, "output": last["output"], "rf": last["rf"],
                      "rf_stride": last["rf_stride"], "inputs": list(node.inputs), "layers": members, **summed})
    edges = [{"from": src[2] if isinstance(src, tuple) else src, "to": dst[2] if isinstance(dst, tuple) else dst,
              "points": [[round(px * PX, 2), round(py * PX, 2)] for px, py in pts]} for src, dst, pts in lay.edges]
    t = analysis.totals
    return {"model": analysis.model.name, "title": drawing.title, "subtitle": drawing.subtitle,
            "width": round(lay.width * PX, 2), "height": round(lay.height * PX, 2),
            "totals": {"params": t["params"], "macs": t["macs"], "flops": t["flops"],
                       "forward_memory_bytes": t["forward_memory_bytes"], "layers": t["layers"]},
            "nodes": nodes, "edges": edges,
            "notes": [[round(x * PX, 2), round(y * PX, 2), text] for x, y, text in lay.notes]}


def _fill(drawing: Any, name: str) -> str:
    from .graph_style import box_fill
    return box_fill(drawing.nodes[name], drawing.all_stats, drawing.scale)


def _svg(drawing: Any, payload: Mapping[str, Any]) -> str:
    from .graph_style import EDGE_COLOR, text_color
    out = [f'<g id="edges" fill="none" stroke="{EDGE_COLOR}" stroke-width="1.2" marker-end="url(#arrow)">']
    for e in payload["edges"]:
        pts = e["points"]
        d = f"M{pts[0][0]},{pts[0][1]}"
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            bend = (y1 - y0) / 2
            d += f" C{x0},{y0 + bend} {x1},{y1 - bend} {x1},{y1}"
        out.append(f'<path d="{d}" data-from="{html.escape(e["from"])}" data-to="{html.escape(e["to"])}"/>')
    out.append('</g><g id="boxes">')
    sizes = {"name": 12.0, "detail": 10.7, "stats": 10.0}
    for i, n in enumerate(payload["nodes"]):
        fill = "#ffffff" if n["ghost"] else _fill(drawing, n["id"])
        ink = "#555555" if n["ghost"] else text_color(fill)
        x0, y0 = n["x"] - n["w"] / 2, n["y"] - n["h"] / 2
        out.append(f'<g class="node{" ghost" if n["ghost"] else ""}" data-i="{i}">'
                   f'<rect x="{x0:.2f}" y="{y0:.2f}" width="{n["w"]}" height="{n["h"]}" rx="7" fill="{fill}"/>')
        heights = [sizes[r] * 1.3 for _, r in n["lines"]]
        ty = n["y"] - sum(heights) / 2
        for (text, role), h in zip(n["lines"], heights):
            ty += h / 2
            weight = ' font-weight="bold"' if role == "name" else ""
            out.append(f'<text x="{n["x"]}" y="{ty:.2f}" font-size="{sizes[role]}"{weight} fill="{ink}">'
                       f"{html.escape(text)}</text>")
            ty += h / 2
        out.append("</g>")
    out.append("</g>")
    for x, y, text in payload["notes"]:   # "continues in column 2" / "from column 1" at the breaks
        dy = -9 if text.startswith("from") else 9
        out.append(f'<text x="{x}" y="{y + dy}" font-size="10" font-style="italic" fill="#555555">'
                   f"{html.escape(text)}</text>")
    return "\n".join(out)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="archstat">
<title>{title}</title>
<style>
html, body {{ margin: 0; height: 100%; font-family: "DejaVu Sans", Verdana, system-ui, sans-serif; color: #1d1f21; }}
#top {{ position: fixed; left: 0; right: 0; top: 0; padding: 8px 14px; background: rgba(255,255,255,0.94);
        border-bottom: 1px solid #d9dce0; z-index: 3; display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }}
#top h1 {{ font-size: 17px; margin: 0; }}
#top .sub {{ color: #5b6066; font-size: 12.5px; }}
#top .tools {{ margin-left: auto; display: flex; gap: 6px; align-items: center; }}
button, input {{ font: inherit; font-size: 13px; padding: 3px 9px; border: 1px solid #b9bec5; border-radius: 4px;
                 background: #fff; }}
button:hover {{ background: #eef0f3; cursor: pointer; }}
#view {{ position: fixed; left: 0; top: 0; width: 100vw; height: 100vh; cursor: grab; }}
#view.dragging {{ cursor: grabbing; }}
svg text {{ text-anchor: middle; dominant-baseline: central; font-family: "DejaVu Sans", Verdana, sans-serif;
            pointer-events: none; }}
.node rect {{ stroke: #333; stroke-width: 1; }}
.node.ghost rect {{ stroke: #777; stroke-dasharray: 4 3; }}
.node:hover rect {{ stroke: #1f6feb; stroke-width: 2.5; cursor: pointer; }}
.node.pinned rect {{ stroke: #d1242f; stroke-width: 3; }}
.node.found rect {{ stroke: #bf8700; stroke-width: 3.5; }}
path.lit {{ stroke: #1f6feb; stroke-width: 2.2; }}
#tip, #panel {{ position: fixed; background: #fff; border: 1px solid #b9bec5; border-radius: 6px;
                box-shadow: 0 3px 12px rgba(0,0,0,0.15); font-size: 12.5px; z-index: 4; }}
#tip {{ padding: 7px 10px; pointer-events: none; display: none; max-width: 420px; }}
#panel {{ right: 12px; top: 64px; bottom: 12px; width: 380px; overflow: auto; padding: 10px 12px; display: none; }}
#panel h2 {{ font-size: 14px; margin: 0 0 6px; word-break: break-all; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
td {{ padding: 1px 6px; }}
td.k {{ color: #5b6066; }} td.v {{ text-align: right; }}
#panel table.layers td {{ border-bottom: 1px solid #eee; font-size: 11.5px; }}
#panel .close {{ float: right; }}
#help {{ position: fixed; left: 12px; bottom: 10px; color: #5b6066; font-size: 11.5px; z-index: 3;
         background: rgba(255,255,255,0.85); padding: 2px 6px; }}
</style></head><body>
<div id="top"><h1>{title}</h1><span class="sub">{subtitle}</span>
<span class="tools"><input id="find" placeholder="find a layer" size="18" aria-label="find a layer">
<button id="zin" title="zoom in (+)">+</button><button id="zout" title="zoom out (-)">&minus;</button>
<button id="fit" title="fit the graph (0)">fit</button></span></div>
<svg id="view" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{title}">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">
<path d="M0,0 L10,5 L0,10 z" fill="#4d4d4d"/></marker></defs>
<g id="world">
{svg}
</g></svg>
<div id="tip"></div><div id="panel"></div>
<div id="help">drag to pan &middot; wheel or +/&minus; to zoom &middot; 0 fits &middot; hover a box for its numbers,
click to pin them (Esc closes)</div>
<script id="archstat-graph" type="application/json">{payload}</script>
<script>
(function () {{
  "use strict";
  var data = JSON.parse(document.getElementById("archstat-graph").textContent);
  var svg = document.getElementById("view"), world = document.getElementById("world");
  var tip = document.getElementById("tip"), panel = document.getElementById("panel");
  var view = {{x: 0, y: 0, k: 1}}, drag = null, pinned = null;
  function apply() {{ world.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")"); }}
  function fit() {{
    var top = document.getElementById("top").offsetHeight + 8, w = window.innerWidth, h = window.innerHeight - top - 24;
    var k = Math.min(w / (data.width + 40), h / (data.height + 40), 2);
    view.k = k; view.x = (w - data.width * k) / 2; view.y = top + (h - data.height * k) / 2; apply();
  }}
  function zoom(f, cx, cy) {{
    if (cx === undefined) {{ cx = window.innerWidth / 2; cy = window.innerHeight / 2; }}
    var k = Math.max(0.02, Math.min(view.k * f, 20));
    view.x = cx - (cx - view.x) * k / view.k; view.y = cy - (cy - view.y) * k / view.k; view.k = k; apply();
  }}
  function si(n) {{
    var units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) if (Math.abs(n) >= units[i][0]) return (n / units[i][0]).toPrecision(3) + units[i][1];
    return String(n);
  }}
  function bytes(n) {{ var s = si(n); return n < 1000 ? n + " B" : s.slice(0, -1) + " " + (s.slice(-1) === "K" ? "kB" : s.slice(-1) + "B"); }}
  function exact(n) {{ return n.toLocaleString("en-US"); }}
  function esc(s) {{ return String(s).replace(/[&<>"]/g, function (c) {{ return {{"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}}[c]; }}); }}
  function rows(n) {{
    var r = [["type", n.type], ["output", n.output], ["params", exact(n.params) + (n.params >= 1000 ? " (" + si(n.params) + ")" : "")],
             ["MACs", exact(n.macs) + (n.macs >= 1000 ? " (" + si(n.macs) + ")" : "")],
             ["FLOPs", exact(n.flops) + (n.flops >= 1000 ? " (" + si(n.flops) + ")" : "")],
             ["output memory", bytes(n.memory)], ["receptive field", n.rf + " px, stride " + n.rf_stride]];
    if (n.layers.length > 1) r.splice(1, 0, ["layers", String(n.layers.length)]);
    if (n.inputs.length) r.push(["inputs", n.inputs.join(", ")]);
    return "<table>" + r.map(function (p) {{ return '<tr><td class="k">' + p[0] + '</td><td class="v">' + esc(p[1]) + "</td></tr>"; }}).join("") + "</table>";
  }}
  function details(n) {{
    var h = '<button class="close" title="close (Esc)">&times;</button><h2>' + esc(n.title) + "</h2>" + rows(n);
    if (n.layers.length > 1) {{
      h += '<p style="margin:8px 0 2px;color:#5b6066">the layers in this box</p><table class="layers"><tr><td>layer</td><td>type</td><td class="v">output</td><td class="v">params</td><td class="v">MACs</td><td class="v">memory</td><td class="v">RF</td></tr>';
      n.layers.forEach(function (l) {{
        h += "<tr><td>" + esc(l.name) + "</td><td>" + esc(l.type) + '</td><td class="v">' + l.output + '</td><td class="v">' + si(l.params) +
             '</td><td class="v">' + si(l.macs) + '</td><td class="v">' + bytes(l.memory) + '</td><td class="v">' + l.rf + "</td></tr>";
      }});
      h += "</table>";
    }}
    return h;
  }}
  function light(n, on) {{
    document.querySelectorAll("#edges path").forEach(function (p) {{
      if (p.dataset.from === n.id || p.dataset.to === n.id) p.classList.toggle("lit", on);
    }});
  }}
  function pin(g) {{
    if (pinned) {{ pinned.classList.remove("pinned"); light(data.nodes[pinned.dataset.i], false); }}
    pinned = g;
    if (!g) {{ panel.style.display = "none"; return; }}
    var n = data.nodes[g.dataset.i];
    g.classList.add("pinned"); light(n, true);
    panel.innerHTML = details(n); panel.style.display = "block";
    panel.querySelector(".close").onclick = function () {{ pin(null); }};
  }}
  document.querySelectorAll(".node").forEach(function (g) {{
    var n = data.nodes[g.dataset.i];
    g.addEventListener("mouseenter", function () {{ tip.innerHTML = "<b>" + esc(n.title) + "</b>" + rows(n); tip.style.display = "block"; light(n, true); }});
    g.addEventListener("mousemove", function (e) {{
      var x = e.clientX + 16, y = e.clientY + 16;
      if (x + tip.offsetWidth > window.innerWidth) x = e.clientX - tip.offsetWidth - 16;
      if (y + tip.offsetHeight > window.innerHeight) y = e.clientY - tip.offsetHeight - 16;
      tip.style.left = x + "px"; tip.style.top = y + "px";
    }});
    g.addEventListener("mouseleave", function () {{ tip.style.display = "none"; if (pinned !== g) light(n, false); }});
    g.addEventListener("click", function (e) {{ e.stopPropagation(); pin(pinned === g ? null : g); }});
  }});
  svg.addEventListener("mousedown", function (e) {{ drag = {{x: e.clientX - view.x, y: e.clientY - view.y, moved: false}}; svg.classList.add("dragging"); }});
  window.addEventListener("mousemove", function (e) {{ if (drag) {{ view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; drag.moved = true; apply(); }} }});
  window.addEventListener("mouseup", function () {{ drag = null; svg.classList.remove("dragging"); }});
  svg.addEventListener("wheel", function (e) {{ e.preventDefault(); zoom(Math.exp(-e.deltaY * 0.0015), e.clientX, e.clientY); }}, {{passive: false}});
  document.getElementById("zin").onclick = function () {{ zoom(1.25); }};
  document.getElementById("zout").onclick = function () {{ zoom(0.8); }};
  document.getElementById("fit").onclick = fit;
  document.getElementById("find").addEventListener("input", function (e) {{
    var q = e.target.value.trim().toLowerCase(), first = null;
    document.querySelectorAll(".node").forEach(function (g) {{
      var n = data.nodes[g.dataset.i];
      var hit = q && !n.ghost && (n.title.toLowerCase().indexOf(q) >= 0 ||
                                  n.layers.some(function (l) {{ return l.name.toLowerCase().indexOf(q) >= 0; }}));
      g.classList.toggle("found", !!hit); if (hit && !first) first = n;
    }});
    if (first) {{ var k = Math.max(view.k, 1); view.k = k; view.x = window.innerWidth / 2 - first.x * k; view.y = window.innerHeight / 2 - first.y * k; apply(); }}
  }});
  window.addEventListener("keydown", function (e) {{
    if (e.target.tagName === "INPUT") return;
    if (e.key === "+" || e.key === "=") zoom(1.25); else if (e.key === "-") zoom(0.8);
    else if (e.key === "0") fit(); else if (e.key === "Escape") pin(null);
  }});
  svg.addEventListener("click", function () {{ if (!drag || !drag.moved) pin(null); }});
  window.addEventListener("resize", fit);
  fit();
  document.body.dataset.ready = "1";
}})();
</script>
</body></html>
"""


def graph_page(drawing: Any, analysis: Any) -> str:
    """The page (module docstring) of a prepared drawing (:class:`.graph_draw._Drawing`)."""
    payload = graph_payload(drawing, analysis)
    svg = _svg(drawing, payload)
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    return _PAGE.format(title=html.escape(drawing.title), subtitle=html.escape(drawing.subtitle), svg=svg,
                        payload=data)

