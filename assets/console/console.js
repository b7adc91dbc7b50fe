// signgate web console: upload progress and the stamp desk's placement box.
// No inline script anywhere (the Content-Security-Policy allows this file only), no other host.
'use strict';

// Forms marked data-progress upload a large file through XMLHttpRequest to show progress, then
// show the answer page as it came back (the forms also work without this script).
function wireProgress(form) {
  const bar = form.querySelector('progress');
  if (!bar || !window.XMLHttpRequest || !window.FormData) return;
  form.addEventListener('submit', (event) => {
    let total = 0;
    form.querySelectorAll('input[type="file"]').forEach((input) => {
      Array.from(input.files || []).forEach((f) => { total += f.size; });
    });
    // Small uploads go the plain way; progress is for files that take a while.
    if (total < 2 * 1024 * 1024) return;
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    xhr.responseType = 'text';
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener('load', () => {
      const url = xhr.responseURL || form.action;
      document.open();
      document.write(xhr.responseText);
      document.close();
      if (window.history && url) window.history.replaceState(null, '', url);
    });
    xhr.addEventListener('error', () => {
      bar.hidden = true;
      form.submit();
    });
    xhr.send(new FormData(form));
  });
}

// The page box of the stamp desk: a click (or the arrow keys) sets x/y in PDF points,
// measured from the bottom-left corner of the page.
function wireStampBox(box) {
  const form = box.closest('form');
  const x = form.querySelector('#x');
  const y = form.querySelector('#y');
  const marker = box.querySelector('.marker');
  const key = form.querySelector('#key');
  const file = form.querySelector('#document');
  let page = { llx: 0, lly: 0, w: Number(box.dataset.width), h: Number(box.dataset.height) };

  function stampSize() {
    // Text stamps and the official's signature are boxes of the size their radio button gives.
    const kind = form.querySelector('input[name="kind"]:checked');
    if (kind && kind.dataset.w) return { w: Number(kind.dataset.w), h: Number(kind.dataset.h), text: true };
    const opt = key && key.selectedOptions[0];
    const d = opt ? Number(opt.dataset.size) || 102 : 102;
    return { w: d, h: d, text: false };
  }

  function draw() {
    const size = stampSize();
    const px = Number(x.value) - page.llx;
    const py = Number(y.value) - page.lly;
    marker.classList.toggle('text', size.text);
    marker.style.width = (size.w / page.w * 100) + '%';
    marker.style.height = (size.h / page.h * 100) + '%';
    marker.style.left = ((px - size.w / 2) / page.w * 100) + '%';
    marker.style.top = ((page.h - py - size.h / 2) / page.h * 100) + '%';
  }

  function set(px, py) {
    const cx = Math.min(Math.max(px, 0), page.w);
    const cy = Math.min(Math.max(py, 0), page.h);
    x.value = (page.llx + cx).toFixed(1);
    y.value = (page.lly + cy).toFixed(1);
    draw();
  }

  box.addEventListener('click', (e) => {
    const r = box.getBoundingClientRect();
    set((e.clientX - r.left) / r.width * page.w, (1 - (e.clientY - r.top) / r.height) * page.h);
  });
  box.addEventListener('keydown', (e) => {
    const step = e.shiftKey ? 50 : 10;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    const m = moves[e.key];
    if (!m) return;
    e.preventDefault();
    set(Number(x.value) - page.llx + m[0], Number(y.value) - page.lly + m[1]);
  });
  [x, y, key].forEach((el) => el && el.addEventListener('input', draw));
  form.querySelectorAll('input[name="kind"]').forEach((el) => el.addEventListener('change', draw));

  function usePage(w, h) {
    // Coordinates are in the page as displayed, from the bottom-left corner of its crop box.
    page = { llx: 0, lly: 0, w, h };
    box.style.aspectRatio = w + ' / ' + h;
    box.dataset.width = String(w);
    box.dataset.height = String(h);
    draw();
  }

  // The page is drawn with pdf.js (served from this site; no eval). Without it, the file's
  // first /MediaBox sizes the box (A4 when none is found).
  let pdfjs = null;
  let doc = null;
  function drawPage() {
    if (!doc) return;
    const n = Math.min(Math.max(Number(pageInput.value) || 1, 1), doc.numPages);
    doc.getPage(n).then((p) => {
      const base = p.getViewport({ scale: 1 });
      usePage(base.width, base.height);
      const scale = (box.clientWidth * (window.devicePixelRatio || 1)) / base.width;
      const viewport = p.getViewport({ scale });
      let canvas = box.querySelector('canvas');
      if (!canvas) {
        canvas = document.createElement('canvas');
        canvas.setAttribute('aria-hidden', 'true');
        box.insertBefore(canvas, marker);
      }
      canvas.width = Math.floor(viewport.width);
      canvas.height = Math.floor(viewport.height);
      box.dataset.rendered = '0';
      return p.render({ canvas, canvasContext: canvas.getContext('2d'), viewport }).promise
        .then(() => { box.dataset.rendered = String(n); });
    }).catch(() => { box.dataset.rendered = 'failed'; });
  }
  const pageInput = form.querySelector('#page');
  pageInput.addEventListener('change', drawPage);

  file.addEventListener('change', () => {
    const f = file.files && file.files[0];
    doc = null;
    const old = box.querySelector('canvas');
    if (old) old.remove();
    if (!f) return;
    f.arrayBuffer().then((buf) => {
      const text = new TextDecoder('latin1').decode(buf.slice(0, 4 * 1024 * 1024));
      const m = /\/MediaBox\s*\[\s*(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s*\]/.exec(text);
      if (m) {
        const [llx, lly, urx, ury] = m.slice(1).map(Number);
        if (urx > llx && ury > lly) usePage(urx - llx, ury - lly);
      }
      const loaded = pdfjs ? Promise.resolve(pdfjs) : loadPdfjs();
      return loaded.then((lib) => {
        pdfjs = lib;
        return lib.getDocument({ data: new Uint8Array(buf), isEvalSupported: false }).promise;
      }).then((d) => {
        doc = d;
        pageInput.max = String(d.numPages);
        drawPage();
      });
    }).catch(() => { box.dataset.rendered = 'failed'; });
  });
  draw();
}

function loadPdfjs() {
  return import('/assets/pdfjs/pdf.min.mjs').then((lib) => {
    lib.GlobalWorkerOptions.workerSrc = '/assets/pdfjs/pdf.worker.min.mjs';
    return lib;
  });
}

// The verify page: the answer's result section replaces the previous one in place (the chosen
// file and its drawn pages stay), and a chosen PDF's pages are drawn here with its signature
// fields outlined. Without this script the form posts and the server's page shows the result.
function wireVerify(form) {
  const bar = form.querySelector('progress');
  form.addEventListener('submit', (event) => {
    if (!window.XMLHttpRequest || !window.FormData || !window.DOMParser) return;
    // The signed PDF report is a download: the browser posts the form itself.
    if (event.submitter && event.submitter.hasAttribute('formaction')) return;
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open('POST', form.action);
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener('load', () => {
      bar.hidden = true;
      const answer = new DOMParser().parseFromString(xhr.responseText, 'text/html');
      const result = answer.getElementById('result') || answer.querySelector('.alert');
      if (!result) { form.submit(); return; }
      const old = document.getElementById('result');
      if (old) old.remove();
      const main = document.getElementById('main');
      const heading = main.querySelector('h1');
      heading.after(document.importNode(result, true));
      const shown = document.getElementById('result') || main.querySelector('.alert');
      if (shown) { shown.setAttribute('tabindex', '-1'); shown.focus(); }
      const fresh = answer.querySelector('input[name="csrf"]');
      const mine = form.querySelector('input[name="csrf"]');
      if (fresh && mine) mine.value = fresh.value;
    });
    xhr.addEventListener('error', () => { bar.hidden = true; form.submit(); });
    xhr.send(new FormData(form));
  });

  const section = document.getElementById('pages');
  const list = section.querySelector('.pages');
  const input = form.querySelector('#document');
  input.addEventListener('change', () => {
    list.replaceChildren();
    section.hidden = true;
    const f = input.files && input.files[0];
    if (!f) return;
    f.arrayBuffer().then((buf) => {
      const head = new TextDecoder('latin1').decode(buf.slice(0, 5));
      if (head !== '%PDF-') return null;
      return loadPdfjs().then((lib) =>
        lib.getDocument({ data: new Uint8Array(buf), isEvalSupported: false }).promise);
    }).then((doc) => {
      if (!doc) return;
      section.hidden = false;
      const pages = Math.min(doc.numPages, 20);
      let chain = Promise.resolve();
      for (let n = 1; n <= pages; n++) {
        chain = chain.then(() => doc.getPage(n)).then((p) => drawVerifyPage(p, n, list));
      }
      return chain.then(() => { section.dataset.drawn = String(pages); });
    }).catch((e) => { section.dataset.drawn = 'failed: ' + e; });
  });
}

function drawVerifyPage(p, n, list) {
  const width = Math.min(list.clientWidth || 600, 600);
  const base = p.getViewport({ scale: 1 });
  const viewport = p.getViewport({ scale: width / base.width });
  const figure = document.createElement('figure');
  figure.className = 'pdfpage';
  const canvas = document.createElement('canvas');
  canvas.width = Math.floor(viewport.width);
  canvas.height = Math.floor(viewport.height);
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', list.dataset.pageLabel + ' ' + n);
  const sheet = document.createElement('div');
  sheet.className = 'sheet';
  sheet.append(canvas);
  figure.append(sheet);
  const caption = document.createElement('figcaption');
  caption.textContent = list.dataset.pageLabel + ' ' + n;
  figure.append(caption);
  list.append(figure);
  return p.getAnnotations().then((annotations) => {
    annotations.filter((a) => a.fieldType === 'Sig').forEach((a) => {
      const [ta, tb, tc, td, te, tf] = viewport.transform;
      const at = (x, y) => [ta * x + tc * y + te, tb * x + td * y + tf];
      const [x1, y1] = at(a.rect[0], a.rect[1]);
      const [x2, y2] = at(a.rect[2], a.rect[3]);
      const box = document.createElement('div');
      box.className = 'sigfield';
      box.style.left = (Math.min(x1, x2) / viewport.width * 100) + '%';
      box.style.top = (Math.min(y1, y2) / viewport.height * 100) + '%';
      box.style.width = (Math.abs(x2 - x1) / viewport.width * 100) + '%';
      box.style.height = (Math.abs(y2 - y1) / viewport.height * 100) + '%';
      const label = document.createElement('span');
      label.textContent = a.fieldName || '';
      box.append(label);
      sheet.append(box);
    });
    return p.render({ canvas, canvasContext: canvas.getContext('2d'), viewport }).promise;
  });
}

// A batch's page: its progress is polled (a JSON answer from this site) until it is finished,
// then the ZIP link shows and the documents' table is brought up to date. Without this script
// a link reloads the page.
function wireBatch(section) {
  if (section.dataset.finished === 'true' || !window.fetch) return;
  const bar = section.querySelector('#batch-progress');
  const status = section.querySelector('#batch-status');
  const download = section.querySelector('#batch-download');
  const refresh = section.querySelector('#batch-refresh');
  refresh.hidden = true;
  const tick = () => fetch(section.dataset.progressUrl, { credentials: 'same-origin', cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
    .then((p) => {
      bar.max = Math.max(p.total, 1);
      bar.value = p.signed + p.failed;
      if (status.textContent !== p.sentence) status.textContent = p.sentence;
      if (!p.finished) { setTimeout(tick, 500); return null; }
      return fetch(window.location.href, { credentials: 'same-origin', cache: 'no-store' })
        .then((r) => r.text())
        .then((text) => {
          const fresh = new DOMParser().parseFromString(text, 'text/html').querySelector('table.docs tbody');
          const mine = section.querySelector('table.docs tbody');
          if (fresh && mine) mine.replaceWith(document.importNode(fresh, true));
          download.hidden = false;
          section.dataset.finished = 'true';
        });
    })
    .catch(() => { refresh.hidden = false; });
  tick();
}

document.addEventListener('DOMContentLoaded', () => {
  const batch = document.getElementById('batch');
  if (batch && batch.dataset.progressUrl) wireBatch(batch);
  const verify = document.getElementById('verify-form');
  if (verify) wireVerify(verify);
  document.querySelectorAll('form[data-progress]').forEach(wireProgress);
  const box = document.getElementById('stampbox');
  if (box) wireStampBox(box);
  const result = document.getElementById('result');
  if (result) result.focus();
});
