// The page `ldm serve` answers at `/`: one self-contained HTML document (inline CSS and JS, nothing
// fetched from elsewhere) that drives AUTOMATIC1111's /sdapi/v1 routes — txt2img / img2img / inpaint
// form with a mask brush, live progress from /progress, results with their parameters text — and
// browses the server's own /ldm/history gallery.
enum WebPage {
    /// The whole document: head and style (this file), body (WebPageBody.swift), script (WebPageScript.swift).
    static let html = head + body + script

    static let head = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LatentDiffusion</title>
<style>
:root {
  color-scheme: light dark;
  --bg: #f4f6f8; --panel: #ffffff; --text: #1b1f24; --muted: #5b6470; --border: #d3d9e0;
  --accent: #2f6fde; --accent-soft: #e3ecfb; --accent-text: #ffffff;
  --danger: #a61b12; --danger-bg: #fdecea;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14171b; --panel: #1d2127; --text: #e6e9ee; --muted: #9aa3ae; --border: #353b44;
    --accent: #6a9ef2; --accent-soft: #23324a; --accent-text: #0d1117;
    --danger: #ff9c94; --danger-bg: #3a1f1f;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, sans-serif; background: var(--bg); color: var(--text); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: .4rem 1rem; padding: .6rem 1.2rem;
  background: var(--panel); border-bottom: 1px solid var(--border); }
h1 { font-size: 1.15rem; margin: 0; }
h2 { font-size: 1rem; margin: 0 0 .6rem; }
#status { color: var(--muted); font-size: .9rem; margin-left: auto; }
.wrap { max-width: 1600px; margin: 0 auto; padding: 0 1.2rem 1.5rem; }
#error { margin: .8rem 0 0; padding: .45rem .8rem; border: 1px solid var(--danger); border-radius: 6px;
  background: var(--danger-bg); color: var(--danger); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; cursor: pointer; position: sticky; top: .5rem; z-index: 5; }
main { display: grid; grid-template-columns: minmax(300px, 420px) minmax(0, 1fr); gap: 1rem; margin-top: 1rem; align-items: start; }
.output { display: grid; gap: 1rem; min-width: 0; }
.panel { background: var(--panel); border: 1px solid var(--border); border-radius: 10px; padding: 1rem; min-width: 0; }
label { display: block; font-size: .85rem; color: var(--muted); margin-bottom: .2rem; }
textarea, input, select, button { font: inherit; color: inherit; }
textarea, input[type=number], select { width: 100%; padding: .4rem .5rem; border: 1px solid var(--border);
  border-radius: 6px; background: var(--bg); }
textarea { resize: vertical; }
input[type=range] { width: 100%; accent-color: var(--accent); }
.field { margin-bottom: .7rem; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: .6rem; }
.size-row { display: grid; grid-template-columns: 1fr auto 1fr; gap: .4rem; align-items: end; }
.size-row button { margin-bottom: .7rem; }
.inline { display: flex; gap: .4rem; align-items: center; flex-wrap: wrap; }
.inline input[type=number] { flex: 1; min-width: 6rem; }
button, a.button { padding: .4rem .8rem; border: 1px solid var(--border); border-radius: 6px; background: var(--panel);
  cursor: pointer; text-decoration: none; color: var(--text); font-size: .9rem; }
button:hover:not(:disabled), a.button:hover { border-color: var(--accent); }
button:disabled { opacity: .5; cursor: default; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); font-weight: 600; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.actions { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin-bottom: .9rem; }
.actions #generate { flex: 1; padding: .55rem; font-size: 1rem; }
.hint { color: var(--muted); font-size: .8rem; }
.modes { display: flex; border: 1px solid var(--border); border-radius: 8px; padding: 0; margin: 0 0 .9rem; overflow: hidden; }
.modes label { flex: 1; margin: 0; padding: .45rem .3rem; text-align: center; color: var(--text); font-size: .9rem; cursor: pointer; }
.modes label + label { border-left: 1px solid var(--border); }
.modes label:has(input:checked) { background: var(--accent-soft); font-weight: 600; }
.modes input { accent-color: var(--accent); margin: 0 .25rem 0 0; }
.check { margin: 0; color: var(--text); }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.stage-wrap { display: grid; place-items: center; min-height: 140px; border: 2px dashed var(--border);
  border-radius: 8px; padding: .5rem; margin: .6rem 0; background: var(--bg); }
.stage-wrap.dragover { border-color: var(--accent); background: var(--accent-soft); }
.stage { position: relative; width: fit-content; max-width: 100%; }
.stage img { display: block; max-width: 100%; max-height: 70vh; }
#mask-canvas { position: absolute; inset: 0; width: 100%; height: 100%; opacity: .5; cursor: crosshair; touch-action: none; }
#brush-cursor { position: absolute; pointer-events: none; border-radius: 50%; transform: translate(-50%, -50%);
  border: 1px solid #fff; box-shadow: 0 0 0 1px #000; }
.drop-hint { color: var(--muted); margin: 0; text-align: center; }
.progress-wrap { display: flex; align-items: center; gap: .7rem; flex-wrap: wrap; margin-bottom: .7rem; }
#progress { flex: 1; min-width: 10rem; height: 1rem; accent-color: var(--accent); }
#progress-text { font-size: .85rem; color: var(--muted); font-variant-numeric: tabular-nums; }
#preview { display: block; max-width: min(100%, 512px); margin: 0 auto .7rem; border-radius: 6px; }
.result { display: grid; gap: .8rem; grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); }
.result.single { grid-template-columns: minmax(0, 1fr); }
.result.stale { opacity: .45; }
.result figure { margin: 0; padding: .3rem; border: 2px solid transparent; border-radius: 8px; min-width: 0; }
.result figure.selected { border-color: var(--accent); }
.result img { display: block; width: 100%; height: auto; max-height: 75vh; object-fit: contain; border-radius: 6px; cursor: pointer; }
.result figcaption { display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; margin-top: .4rem; font-size: .85rem; }
.result figcaption span { margin-right: auto; color: var(--muted); }
.params { white-space: pre-wrap; overflow-wrap: anywhere; font: .82rem/1.4 ui-monospace, monospace; background: var(--bg);
  border: 1px solid var(--border); border-radius: 6px; padding: .6rem; margin: .8rem 0 0; max-height: 16rem; overflow: auto; }
.params:empty { display: none; }
.gallery-panel { margin-top: 1rem; }
.gallery-head { display: flex; align-items: baseline; gap: 1rem; }
.gallery-head h2 { margin-right: auto; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: .5rem; margin-bottom: .8rem; }
.thumb { padding: 0; aspect-ratio: 1; overflow: hidden; border-radius: 6px; }
.thumb img { display: block; width: 100%; height: 100%; object-fit: cover; }
dialog { width: min(960px, 94vw); max-height: 94vh; padding: 1rem; border: 1px solid var(--border); border-radius: 10px;
  background: var(--panel); color: var(--text); }
dialog::backdrop { background: rgb(0 0 0 / .6); }
.detail-head { display: flex; align-items: baseline; gap: 1rem; }
.detail-head h2 { margin-right: auto; }
#detail-img { display: block; max-width: 100%; max-height: 62vh; margin: 0 auto; border-radius: 6px; }
dialog .actions { margin: .8rem 0 0; }
@media (max-width: 860px) {
  main { grid-template-columns: minmax(0, 1fr); }
  .wrap { padding: 0 .6rem 1rem; }
  header { padding: .6rem; }
}
</style>
"""#
}
