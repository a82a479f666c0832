// Direct uploads (docs/api.md): the Companion S3 multipart routes with the bearer endpoint, parts sent by
// XHR so each reports the bytes sent. The same code path on local disk (part URLs on the API) and on S3.
import { ApiError, errorOf } from './api.js';

const ENDPOINT = '/v1/uploads';
export const PART_BYTES = 5 * 1024 * 1024; // S3's smallest part but the last

function putPart(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.getResponseHeader('ETag'));
        return;
      }
      const problem = (() => { try { return JSON.parse(xhr.responseText); } catch { return {}; } })();
      reject(new ApiError(xhr.status, problem, Number(xhr.getResponseHeader('Retry-After')) || null));
    };
    xhr.onerror = () => reject(new ApiError(0, { title: 'The upload was interrupted' }));
    xhr.send(blob);
  });
}

async function refuseEmpty(api) {
  // The service's route for files sent in one request answers why an empty file is refused.
  const response = await fetch(`${ENDPOINT}/s3/params`, { headers: api.authorization });
  throw await errorOf(response);
}

// Upload `file`; `onProgress(bytesSent)` as parts go out. Resolves to the new asset, or throws an ApiError.
export async function uploadFile(api, file, onProgress) {
  if (file.size === 0) await refuseEmpty(api);
  const { key, uploadId } = await api.post(`${ENDPOINT}/s3/multipart`, {
    filename: file.name, type: file.type, metadata: { size: file.size },
  });
  const query = `?key=${encodeURIComponent(key)}`;
  const at = `${ENDPOINT}/s3/multipart/${encodeURIComponent(uploadId)}`;
  try {
    const parts = [];
    for (let number = 1, start = 0; start < file.size; number += 1, start += PART_BYTES) {
      const blob = file.slice(start, Math.min(start + PART_BYTES, file.size));
      const { url } = await api.get(`${at}/${number}${query}`);
      const etag = await putPart(url, blob, (loaded) => onProgress(start + loaded));
      parts.push({ PartNumber: number, ETag: etag });
    }
    const done = await api.post(`${at}/complete${query}`, { parts });
    return done.asset;
  } catch (failure) {
    api.delete(`${at}${query}`).catch(() => {}); // gone already when completion refused the file
    throw failure;
  }
}
