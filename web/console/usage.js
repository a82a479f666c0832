// The usage panel: the storage bar in the status GET /v1/me/usage gives, and the month's generations.
import { $, formatBytes, formatDate, plural } from './dom.js';

export function showUsage(usage) {
  const { storage, generations } = usage;
  const bar = $('#storage-bar');
  const shown = Math.min(100, storage.percentage);
  bar.className = `bar status-${storage.status}${storage.usedBytes ? ' used' : ''}`;
  bar.setAttribute('aria-valuenow', String(Math.round(shown)));
  bar.setAttribute('aria-valuetext', `${storage.percentage} % used (${storage.status})`);
  bar.dataset.usedBytes = String(storage.usedBytes);
  bar.dataset.status = storage.status;
  $('#storage-fill').style.width = `${shown}%`;
  $('#storage-text').textContent =
    `${formatBytes(storage.usedBytes)} of ${formatBytes(storage.quotaBytes)} (${storage.percentage} %) · ${storage.status}`;
  const counter = (label, { used, limit, remaining }) => `${label} ${used} of ${limit} (${remaining} left)`;
  $('#generations-text').textContent = [
    counter('Images', generations.image),
    counter('Videos', generations.video),
  ].join(' · ');
  $('#reset-text').textContent =
    `Generations reset on ${formatDate(usage.billingCycleEnd)} (in ${plural(usage.daysUntilReset, 'day')}).`;
}
