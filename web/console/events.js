// The live event stream (docs/events.md): a single-use ticket from the events process, then EventSource.
// On any failure the stream is reopened with a fresh ticket from the last event seen, so nothing is missed.

const RETRY_MS = [1000, 2000, 5000, 10000];

export class LiveEvents {
  constructor(api, eventsUrl, handlers, onState) {
    this.api = api;
    this.eventsUrl = eventsUrl;
    this.handlers = handlers; // {asset, project, usage, reset}: data => void
    this.onState = onState;
    this.lastEventId = null;
    this.source = null;
    this.failures = 0;
    this.stopped = false;
  }

  async start() {
    if (this.stopped) return;
    this.onState('connecting');
    try {
      const { ticket } = await this.api.post('/v1/events/ticket', undefined, { base: this.eventsUrl });
      let url = `${this.eventsUrl}/v1/events?ticket=${encodeURIComponent(ticket)}`;
      if (this.lastEventId) url += `&lastEventId=${encodeURIComponent(this.lastEventId)}`;
      this.open(url);
    } catch {
      this.retry();
    }
  }

  open(url) {
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.onState('live');
    };
    // The browser would reconnect with the spent ticket: reopen with a new one instead.
    source.onerror = () => {
      source.close();
      if (this.source === source) this.retry();
    };
    for (const type of Object.keys(this.handlers)) {
      source.addEventListener(type, (event) => {
        // A reset's id is the newest kept one, or empty: resume from there, or from now.
        this.lastEventId = type === 'reset' ? event.lastEventId || null : event.lastEventId || this.lastEventId;
        this.handlers[type](JSON.parse(event.data));
      });
    }
  }

  retry() {
    if (this.stopped) return;
    this.onState('reconnecting');
    const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    setTimeout(() => this.start(), delay);
  }

  stop() {
    this.stopped = true;
    this.source?.close();
    this.source = null;
  }
}
