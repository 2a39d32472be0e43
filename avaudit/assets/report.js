const clean = t => t.toLowerCase();
document.querySelectorAll('table.paged').forEach(table => {
  const body = table.tBodies[0], size = +table.dataset.page;
  let page = 0, query = '';
  const bar = document.createElement('div');
  bar.className = 'pager';
  bar.innerHTML = '<input type="search" placeholder="filter rows"> <button>&lsaquo; previous</button> '
    + '<span></span> <button>next &rsaquo;</button>';
  table.before(bar);
  const [filter, previous, label, next] = bar.querySelectorAll('input, button, span');
  const matching = () => [...body.rows].filter(r => !query || clean(r.textContent).includes(query));
  const render = () => {
    const rows = matching(), pages = Math.max(1, Math.ceil(rows.length / size));
    page = Math.max(0, Math.min(page, pages - 1));
    const shown = new Set(rows.slice(page * size, (page + 1) * size));
    for (const r of body.rows) r.style.display = shown.has(r) ? '' : 'none';
    label.textContent = `page ${page + 1} of ${pages} (${rows.length} rows)`;
    table.classList.add('ready');
  };
  filter.addEventListener('input', () => { query = clean(filter.value); page = 0; render(); });
  previous.addEventListener('click', () => { page -= 1; render(); });
  next.addEventListener('click', () => { page += 1; render(); });
  table.querySelectorAll('th').forEach((th, column) => th.addEventListener('click', () => {
    const up = th.dataset.up !== '1';
    th.dataset.up = up ? '1' : '0';
    const value = r => { const t = r.cells[column].textContent, n = Number(t); return t === '' || isNaN(n) ? t : n; };
    const rows = [...body.rows].sort((a, b) => {
      const x = value(a), y = value(b);
      if (typeof x !== typeof y) return (typeof x === 'number' ? -1 : 1) * (up ? 1 : -1);
      return (x > y ? 1 : x < y ? -1 : 0) * (up ? 1 : -1);
    });
    rows.forEach(r => body.appendChild(r));
    page = 0;
    render();
  }));
  render();
});
document.addEventListener('click', event => {  // a clip link becomes its player, playing
  const link = event.target.closest('a.clip');
  if (!link) return;
  event.preventDefault();
  const video = document.createElement('video');
  Object.assign(video, {controls: true, src: link.getAttribute('href'), title: link.title});
  link.replaceWith(video);
  video.play().catch(() => {});  // a click lets it play with sound; else its controls do
});
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.videos = document.querySelectorAll('video[controls]').length;
});
