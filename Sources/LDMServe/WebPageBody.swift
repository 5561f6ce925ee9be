// The body markup of `ldm serve`'s page (see WebPage.swift).
extension WebPage {
    static let body = #"""
</head>
<body>
<header>
  <h1>LatentDiffusion</h1>
  <span class="hint">Stable Diffusion on this machine's CPU</span>
  <span id="status" role="status" aria-live="polite"></span>
</header>
<div class="wrap">
<p id="error" role="alert" title="" hidden></p>
<main>
  <form id="form" class="panel" novalidate aria-label="Generation settings">
    <fieldset class="modes">
      <legend class="sr-only">Mode</legend>
      <label><input type="radio" name="mode" id="mode-txt2img" value="txt2img" checked>txt2img</label>
      <label><input type="radio" name="mode" id="mode-img2img" value="img2img">img2img</label>
      <label><input type="radio" name="mode" id="mode-inpaint" value="inpaint">Inpaint</label>
    </fieldset>
    <div class="field"><label for="prompt">Prompt</label>
      <textarea id="prompt" rows="4" placeholder="a watercolor painting of a fox in a snowy forest"></textarea></div>
    <div class="field"><label for="negative">Negative prompt</label>
      <textarea id="negative" rows="2" placeholder="blurry, low quality"></textarea></div>
    <div class="actions">
      <button type="submit" id="generate" class="primary" aria-keyshortcuts="Control+Enter">Generate</button>
      <button type="button" id="interrupt" disabled>Interrupt</button>
      <span class="hint">Ctrl+Enter</span>
    </div>
    <div class="field"><label for="model">Model</label><select id="model"></select></div>
    <div class="row">
      <div class="field"><label for="sampler">Sampler</label><select id="sampler"></select></div>
      <div class="field"><label for="steps">Steps</label>
        <input type="number" id="steps" min="1" max="150" step="1" value="20" required></div>
    </div>
    <div class="row">
      <div class="field"><label for="cfg">CFG scale</label>
        <input type="number" id="cfg" min="1" max="30" step="0.5" value="7" required></div>
      <div class="field"><label for="batch">Batch size</label>
        <input type="number" id="batch" min="1" max="8" step="1" value="1" required></div>
    </div>
    <div class="field"><label for="seed">Seed (-1 = random)</label>
      <div class="inline">
        <input type="number" id="seed" min="-1" max="4294967295" step="1" value="-1" required>
        <button type="button" id="seed-random" title="Use a random seed (-1)">Random</button>
        <button type="button" id="seed-reuse" title="Use the seed of the selected result" disabled>Reuse last</button>
      </div></div>
    <div class="size-row">
      <div class="field"><label for="width">Width</label>
        <input type="number" id="width" min="64" max="2048" step="8" value="512" required></div>
      <button type="button" id="swap-size" title="Swap width and height" aria-label="Swap width and height">⇄</button>
      <div class="field"><label for="height">Height</label>
        <input type="number" id="height" min="64" max="2048" step="8" value="512" required></div>
    </div>
  </form>

  <div class="output" id="output">
    <section id="init-section" class="panel" aria-labelledby="init-title" hidden>
      <h2 id="init-title">Input image</h2>
      <div class="inline">
        <label for="init-file" class="sr-only">Input image file</label>
        <input type="file" id="init-file" accept="image/*">
        <button type="button" id="pnginfo" disabled title="Read the generation parameters stored in the image (PNG info) into the form">Load its parameters</button>
      </div>
      <div class="stage-wrap" id="stage-wrap">
        <p class="drop-hint" id="drop-hint">Drop an image here, choose a file, or press “Use as input” on a result.</p>
        <div class="stage" id="stage" hidden>
          <img id="init-image" alt="Input image">
          <canvas id="mask-canvas" aria-label="Inpainting mask: paint over the area to repaint" hidden></canvas>
          <div id="brush-cursor" hidden></div>
        </div>
      </div>
      <p id="init-info" class="hint"></p>
      <div class="field"><label for="strength">Denoising strength: <output id="strength-value" for="strength">0.75</output></label>
        <input type="range" id="strength" min="0" max="1" step="0.01" value="0.75"></div>
      <div id="mask-tools" hidden>
        <div class="row">
          <div class="field"><label for="brush">Brush size: <output id="brush-value" for="brush">40</output> px</label>
            <input type="range" id="brush" min="4" max="200" step="1" value="40"></div>
          <div class="field"><label for="mask-blur">Mask blur</label>
            <input type="number" id="mask-blur" min="0" max="64" step="1" value="4"></div>
        </div>
        <div class="inline">
          <label class="inline check" for="erase"><input type="checkbox" id="erase"> Erase</label>
          <button type="button" id="mask-clear">Clear mask</button>
          <button type="button" id="mask-invert">Invert mask</button>
          <span class="hint">Painted = repainted; the rest is kept.</span>
        </div>
      </div>
    </section>

    <section class="panel" aria-labelledby="result-title">
      <h2 id="result-title">Result</h2>
      <div class="progress-wrap">
        <progress id="progress" max="1" value="0" aria-label="Generation progress"></progress>
        <span id="progress-text" aria-live="polite">Idle</span>
      </div>
      <img id="preview" alt="Live preview of the image being generated" hidden>
      <div id="result" class="result" aria-live="polite"></div>
      <pre id="result-params" class="params" aria-label="Parameters of the selected result"></pre>
    </section>
  </div>
</main>

<section class="panel gallery-panel" aria-labelledby="gallery-title">
  <div class="gallery-head">
    <h2 id="gallery-title">History</h2>
    <button type="button" id="gallery-refresh">Refresh</button>
  </div>
  <div id="gallery" class="gallery"></div>
  <p id="gallery-empty" class="hint" hidden>No images yet: generated images appear here.</p>
  <button type="button" id="gallery-more" hidden>Load more</button>
</section>
</div>

<dialog id="detail" aria-labelledby="detail-title">
  <div class="detail-head">
    <h2 id="detail-title">Image</h2>
    <button type="button" id="detail-close" aria-label="Close">✕</button>
  </div>
  <img id="detail-img" alt="">
  <pre id="detail-params" class="params"></pre>
  <div class="actions">
    <button type="button" id="detail-reuse" class="primary">Reuse parameters</button>
    <button type="button" id="detail-use">Use as input</button>
    <a id="detail-download" class="button" href="/" download>Download</a>
  </div>
</dialog>


"""#
}
