// The console: sign-in, then uploads, the assets grid, usage and projects, kept live by the event stream.
import { Api, consoleConfig, devToken } from './api.js';
import { AssetGrid } from './assets.js';
import { $, formatBytes, h } from './dom.js';
import { LiveEvents } from './events.js';
import { Projects } from './projects.js';
import { uploadFile } from './uploads.js';
import { showUsage } from './usage.js';

const TOKEN_KEY = 'iskra-console-token';
const PARALLEL_UPLOADS = 3;
let config = { eventsUrl: '', devTokens: false };
let session = null; // {api, events, grid, projects}

function say(message) {
  $('#notice-text').textContent = message;
  $('#notice').hidden = !message;
}

const reportError = (failure) => say(failure.message || String(failure));

// A token in the address (`/console/#token=<jwt>`, as `iskra dev-token --console` prints) is taken and
// removed from the address bar at once, so it is not left in history or shown on screen.
function tokenFromAddress() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get('token');
  if (token !== null) history.replaceState(null, '', window.location.pathname + window.location.search);
  return token;
}

async function signIn(token) {
  const api = new Api(token.trim());
  const me = await api.get('/v1/me'); // proves the token before anything is shown
  sessionStorage.setItem(TOKEN_KEY, api.token);
  $('#who-name').textContent = me.email ? `${me.userId} (${me.email})` : me.userId;
  $('#who-plan').textContent = `${me.tier} plan · files up to ${formatBytes(me.maxUploadBytes)}`;
  $('#sign-in').hidden = true;
  $('#who').hidden = false;
  $('#app').hidden = false;
  $('#choose-files').focus(); // the sign-in form that had focus is gone; the next thing to do is upload
  const grid = new AssetGrid($('#asset-grid'), $('#more-assets'), { api, onError: reportError });
  const projects = new Projects($('#project-list'), { api, onError: reportError });
  const refreshAll = () => Promise.all([
    grid.reload(), projects.reload(), api.get('/v1/me/usage').then(showUsage),
  ]).catch(reportError);
  const events = new LiveEvents(api, config.eventsUrl, {
    asset: (asset) => grid.upsert(asset),
    usage: showUsage,
    project: (change) => projects.onEvent(change),
    reset: refreshAll,
  }, (state) => { $('#live-state').textContent = state; $('#live-state').dataset.state = state; });
  session = { api, events, grid, projects };
  // The stream opens first, so nothing that changes while the lists load is missed.
  events.start();
  await refreshAll();
}

function signOut() {
  session?.events.stop();
  session = null;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const list of ['#asset-grid', '#project-list', '#upload-list']) $(list).replaceChildren();
  $('#app').hidden = true;
  $('#who').hidden = true;
  $('#sign-in').hidden = false;
  $('#token-input').value = '';
  $('#token-input').focus();
}

async function attempt(action, errorTarget) {
  errorTarget.textContent = '';
  try {
    await action();
  } catch (failure) {
    errorTarget.textContent = failure.message || String(failure);
  }
}

function uploadItem(file) {
  const progress = h('progress', { max: file.size || 1, value: 0, 'aria-label': `Upload of ${file.name}` });
  const status = h('span', { class: 'upload-status' }, 'waiting');
  const item = h('li', { class: 'upload', dataset: { state: 'waiting' } },
    h('span', { class: 'upload-name' }, file.name), progress, status);
  $('#upload-list').prepend(item);
  return {
    progress(sent) {
      progress.value = sent;
      status.textContent = `${formatBytes(sent)} of ${formatBytes(file.size)}`;
      item.dataset.state = 'sending';
    },
    done() {
      progress.value = progress.max;
      status.textContent = 'uploaded';
      item.dataset.state = 'done';
    },
    failed(message) {
      status.textContent = message;
      status.setAttribute('role', 'alert');
      item.dataset.state = 'refused';
    },
  };
}

async function uploadAll(files) {
  const current = session; // uploads started by one sign-in finish into its grid
  if (!current) return;
  const queue = [...files].map((file) => ({ file, row: uploadItem(file) }));
  const next = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      try {
        const asset = await uploadFile(current.api, job.file, (sent) => job.row.progress(sent));
        job.row.done();
        current.grid.upsert(asset); // the stream says so too; whichever comes first draws it
      } catch (failure) {
        job.row.failed(failure.message || String(failure));
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_UPLOADS }, next));
}

function wireUploads() {
  const zone = $('#drop-zone'), input = $('#file-input');
  input.addEventListener('change', () => { uploadAll(input.files); input.value = ''; });
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    uploadAll(event.dataTransfer.files);
  });
  $('#choose-files').addEventListener('click', () => input.click());
}

function wireForms() {
  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(() => signIn($('#token-input').value), $('#sign-in-error'));
  });
  $('#dev-form').addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(async () => signIn((await devToken($('#dev-user').value)).token), $('#sign-in-error'));
  });
  $('#sign-out').addEventListener('click', signOut);
  $('#new-project').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('#new-project-name');
    session?.projects.guarded(async () => { await session.projects.create(name.value.trim()); name.value = ''; });
  });
  $('#project-close').addEventListener('click', () => $('#project-view').close());
  $('#notice-close').addEventListener('click', () => say(''));
}

async function start() {
  wireForms();
  wireUploads();
  const fromAddress = tokenFromAddress();
  await attempt(async () => {
    config = await consoleConfig();
    $('#dev-form').hidden = !config.devTokens;
  }, $('#sign-in-error'));
  const token = fromAddress || sessionStorage.getItem(TOKEN_KEY);
  if (token) await attempt(() => signIn(token), $('#sign-in-error'));
  document.body.dataset.ready = 'true';
}

start();
