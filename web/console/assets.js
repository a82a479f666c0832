// The assets grid: newest first, placeholder until the thumbnail, status and error codes, live updates.
import { formatBytes, formatDuration, h } from './dom.js';
import { placeholderCanvas } from './thumbhash.js';

const PAGE = 40;

// The API's order: created_at, then id, both descending (ids compare as their lowercase hex does).
function newer(asset, other) {
  return asset.createdAt > other.createdAt || (asset.createdAt === other.createdAt && asset.id > other.id);
}

export class AssetGrid {
  constructor(list, moreButton, { api, onError }) {
    this.list = list;
    this.moreButton = moreButton;
    this.api = api;
    this.onError = onError;
    this.cards = new Map(); // id -> {asset, element}
    this.cursor = null;
    moreButton.onclick = () => this.loadMore().catch(onError); // one grid per sign-in: replace, not add
  }

  async reload() {
    this.cards.clear();
    this.list.replaceChildren();
    this.cursor = null;
    await this.loadMore();
  }

  async loadMore() {
    const query = `?limit=${PAGE}${this.cursor ? `&cursor=${encodeURIComponent(this.cursor)}` : ''}`;
    const page = await this.api.get(`/v1/assets${query}`);
    // A card an event already drew is newer than this page's copy of it.
    for (const asset of page.items) if (!this.cards.has(asset.id)) this.upsert(asset);
    this.cursor = page.nextCursor;
    this.moreButton.hidden = !this.cursor;
    this.updateEmpty();
  }

  // An asset as the API or an `asset` event shows it; `{id, status: "deleted"}` removes it.
  upsert(asset) {
    if (asset.status === 'deleted') {
      this.remove(asset.id);
      return;
    }
    const known = this.cards.get(asset.id);
    const element = this.card(asset, known);
    if (known) known.element.replaceWith(element);
    else this.list.insertBefore(element, this.firstOlderThan(asset));
    this.cards.set(asset.id, { asset, element });
    this.updateEmpty();
  }

  remove(id) {
    const known = this.cards.get(id);
    if (!known) return;
    known.element.remove();
    this.cards.delete(id);
    this.updateEmpty();
  }

  // Cards stay newest first: a new one goes before the first card created before it.
  firstOlderThan(asset) {
    for (const element of this.list.children) {
      const shown = this.cards.get(element.dataset.assetId);
      if (shown && newer(asset, shown.asset)) return element;
    }
    return null;
  }

  updateEmpty() {
    this.list.dataset.empty = this.cards.size === 0 ? 'true' : 'false';
  }

  async delete(asset, button) {
    button.disabled = true;
    try {
      await this.api.delete(`/v1/assets/${asset.id}`);
      this.remove(asset.id);
    } catch (failure) {
      button.disabled = false;
      this.onError(failure);
    }
  }

  card(asset, known) {
    const label = asset.metadata?.prompt || asset.mimeType;
    const picture = h('div', { class: 'picture' });
    const placeholder = asset.placeholder && placeholderCanvas(asset.placeholder);
    if (placeholder) {
      placeholder.classList.add('placeholder');
      placeholder.setAttribute('aria-hidden', 'true');
      picture.append(placeholder);
    }
    const thumbnail = asset.urls?.thumbnail;
    if (thumbnail) {
      const img = h('img', { class: 'thumbnail', alt: `${asset.type}: ${label}`, src: thumbnail, decoding: 'async' });
      const wasShown = known?.asset.urls?.thumbnail === thumbnail;
      if (!wasShown) img.addEventListener('load', () => img.classList.add('loaded'), { once: true });
      else img.classList.add('loaded');
      picture.append(img);
    } else if (!placeholder) {
      picture.append(h('span', { class: 'waiting' }, asset.status === 'failed' ? 'no preview' : 'processing…'));
    }
    if (asset.type === 'video') {
      const duration = asset.duration ? formatDuration(asset.duration) : '';
      picture.append(h('span', { class: 'badge video' }, `▶ ${duration}`.trim()));
    }
    const deleteButton = h('button', { type: 'button', class: 'quiet', 'aria-label': `Delete ${asset.type} ${label}` }, 'Delete');
    deleteButton.addEventListener('click', () => this.delete(asset, deleteButton));
    const size = asset.width && asset.height ? ` · ${asset.width}×${asset.height}` : '';
    return h('li', { class: 'asset', dataset: { assetId: asset.id, status: asset.status, type: asset.type } },
      picture,
      h('div', { class: 'about' },
        h('span', { class: `status status-${asset.status}` }, asset.status),
        asset.error ? h('code', { class: 'error-code', title: 'error code' }, asset.error) : null,
        h('span', { class: 'facts' }, `${asset.mimeType} · ${formatBytes(asset.sizeBytes)}${size}`),
        deleteButton));
  }
}
