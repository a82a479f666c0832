// Projects: the list (thumbnail, counts, last saved), create, rename, delete, and a read-only view of one
// canvas laid out from its elements' thumbnails.
import { $, formatTime, h, plural } from './dom.js';

const DEFAULT_SIDE = 200; // an element that states no size (text, shapes) is drawn as this square

export class Projects {
  constructor(list, { api, onError }) {
    this.list = list;
    this.api = api;
    this.onError = onError;
    this.refreshTimer = null;
  }

  async reload() {
    const page = await this.api.get('/v1/projects?limit=100');
    this.list.replaceChildren(...page.items.map((project) => this.card(project)));
    this.list.dataset.empty = page.items.length ? 'false' : 'true';
  }

  // A `project` event: a deletion is shown at once; anything else re-reads the list (for its counts),
  // at most once a second however often a canvas elsewhere autosaves.
  onEvent(change) {
    if (change.deleted) {
      this.list.querySelector(`[data-project-id="${CSS.escape(change.id)}"]`)?.remove();
      return;
    }
    if (this.refreshTimer) return; // the pending re-read will see this change too
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.reload().catch(this.onError);
    }, 1000);
  }

  async create(name) {
    await this.api.post('/v1/projects', name ? { name } : {});
    await this.reload();
  }

  async guarded(action) {
    try {
      await action();
    } catch (failure) {
      this.onError(failure);
    }
  }

  card(project) {
    const picture = project.thumbnailUrl
      ? h('img', { src: project.thumbnailUrl, alt: `Thumbnail of ${project.name}`, class: 'thumbnail loaded' })
      : h('span', { class: 'waiting' }, 'no thumbnail yet');
    const title = h('h3', { class: 'project-name' }, project.name);
    const item = h('li', { class: 'project', dataset: { projectId: project.id } },
      h('div', { class: 'picture' }, picture),
      h('div', { class: 'about' },
        title,
        h('span', { class: 'facts' }, `${plural(project.imageCount, 'image')} · ${plural(project.videoCount, 'video')}`),
        h('span', { class: 'facts' }, `saved ${formatTime(project.lastSavedAt)}`),
        h('div', { class: 'actions' },
          h('button', { type: 'button', onclick: () => this.guarded(() => this.open(project)) }, 'Open'),
          h('button', { type: 'button', onclick: () => this.startRename(item, title, project) }, 'Rename'),
          h('button', {
            type: 'button', class: 'quiet', 'aria-label': `Delete project ${project.name}`,
            onclick: () => this.guarded(() => this.remove(project)),
          }, 'Delete'))));
    return item;
  }

  startRename(item, title, project) {
    const input = h('input', { value: project.name, maxlength: 100, required: true, 'aria-label': `New name for ${project.name}` });
    const form = h('form', { class: 'rename' }, input,
      h('button', { type: 'submit' }, 'Save'),
      h('button', { type: 'button', onclick: () => form.replaceWith(title) }, 'Cancel'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.guarded(async () => {
        await this.api.patch(`/v1/projects/${project.id}`, { name: input.value });
        await this.reload();
      });
    });
    form.addEventListener('keydown', (event) => { if (event.key === 'Escape') form.replaceWith(title); });
    title.replaceWith(form);
    input.select();
  }

  async remove(project) {
    if (!window.confirm(`Delete the project “${project.name}”? Its assets are kept.`)) return;
    await this.api.delete(`/v1/projects/${project.id}`);
    await this.reload();
  }

  async open(summary) {
    const project = await this.api.get(`/v1/projects/${summary.id}`);
    const dialog = $('#project-view');
    $('#project-view-title').textContent = project.name;
    const elements = project.canvasState.elements || [];
    $('#project-view-facts').textContent =
      `${plural(elements.length, 'element')} · revision ${project.revision} · saved ${formatTime(project.lastSavedAt)}`;
    const stage = $('#project-canvas');
    dialog.showModal();
    stage.replaceChildren(...layout(project, stage.clientWidth || 800, Math.max(240, window.innerHeight * 0.6)));
    stage.style.backgroundColor = project.canvasState.backgroundColor || '';
  }
}

// Konva's transforms (workers/media/canvas_render.py): (x, y) is the top-left corner, scaled by `scale`
// and turned `rotation` degrees clockwise about it. The whole content is fitted to the stage.
function corners({ transform: t, width, height }) {
  const angle = (t.rotation * Math.PI) / 180, cos = Math.cos(angle), sin = Math.sin(angle);
  const w = (width || DEFAULT_SIDE) * t.scale, hgt = (height || DEFAULT_SIDE) * t.scale;
  return [[0, 0], [w, 0], [w, hgt], [0, hgt]].map(([u, v]) => [t.x + u * cos - v * sin, t.y + u * sin + v * cos]);
}

function layout(project, stageWidth, stageHeight) {
  const elements = project.canvasState.elements || [];
  if (!elements.length) return [h('p', { class: 'waiting' }, 'This canvas is empty.')];
  const points = elements.flatMap(corners);
  const left = Math.min(...points.map((p) => p[0])), top = Math.min(...points.map((p) => p[1]));
  const right = Math.max(...points.map((p) => p[0])), bottom = Math.max(...points.map((p) => p[1]));
  const factor = Math.min(stageWidth / Math.max(right - left, 1e-9), stageHeight / Math.max(bottom - top, 1e-9));
  const drawn = elements.map((element, z) => {
    const t = element.transform;
    const url = element.assetId && project.assetThumbnails[element.assetId];
    const node = h('div', { class: `element element-${element.type}`, dataset: { elementId: element.id } },
      url ? h('img', { src: url, alt: `${element.type} ${element.assetId}` }) : h('span', {}, element.type));
    // Set through the CSSOM: the page's CSP allows no inline style attributes.
    Object.assign(node.style, {
      left: `${(t.x - left) * factor}px`, top: `${(t.y - top) * factor}px`,
      width: `${(element.width || DEFAULT_SIDE) * t.scale * factor}px`,
      height: `${(element.height || DEFAULT_SIDE) * t.scale * factor}px`,
      transform: `rotate(${t.rotation}deg)`, zIndex: String(z),
    });
    return node;
  });
  const stage = h('div', { class: 'stage' }, drawn);
  Object.assign(stage.style, { width: `${(right - left) * factor}px`, height: `${(bottom - top) * factor}px` });
  return [stage];
}
