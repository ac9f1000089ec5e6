// Keeping a page live. A server-sent-events feed read with fetch, so that
// it can send the staff token (EventSource cannot), and resumed after a
// dropped connection from the last event it saw (`Last-Event-ID`), so no
// change is missed; and a poll, for what has no feed, that reloads on a
// timer and says whether the platform answers.

import { headers } from "./api.js";

export class Feed {
  constructor(path, { onEvent, onState }) {
    this.path = path;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.stopped = false;
    this.controller = null;
  }

  start(after) {
    this.lastId = after || null;
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async loop() {
    let delay = 500;
    while (!this.stopped) {
      try {
        await this.readOnce();
        delay = 500;
      } catch (error) {
        if (this.stopped) return;
        if (error.status === 401 || error.status === 403) {
          this.onState("unauthorized");
          return;
        }
      }
      if (this.stopped) return;
      this.onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  async readOnce() {
    this.controller = new AbortController();
    const extra = { Accept: "text/event-stream" };
    if (this.lastId) extra["Last-Event-ID"] = this.lastId;
    const response = await fetch(this.path, { headers: headers(extra), signal: this.controller.signal });
    if (!response.ok) {
      const error = new Error(`feed answered ${response.status}`);
      error.status = response.status;
      throw error;
    }
    this.onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        this.dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  dispatch(frame) {
    let id = null;
    let event = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (id) this.lastId = id;
    if (data.length) this.onEvent(event, JSON.parse(data.join("\n")));
  }
}

// Runs `load` now and then every `interval` milliseconds (never two at
// once), telling `onState` "live" when it succeeds, "unauthorized" on a
// refused token (and stopping), "reconnecting" on anything else.
export class Poller {
  constructor(load, { interval, onState, onError }) {
    this.load = load;
    this.interval = interval;
    this.onState = onState;
    this.onError = onError;
    this.timer = null;
    this.stopped = false;
    this.running = null;
  }

  start() {
    this.stopped = false;
    this.now();
  }

  // Loads at once (after any load under way), then on the timer again.
  async now() {
    clearTimeout(this.timer);
    if (this.running) await this.running.catch(() => {});
    if (this.stopped) return;
    this.running = this.load();
    try {
      await this.running;
      this.onState("live");
    } catch (error) {
      if (error.status === 401 || error.status === 403) {
        this.onState("unauthorized");
        this.stopped = true;
        return;
      }
      this.onState("reconnecting");
      this.onError?.(error);
    } finally {
      this.running = null;
    }
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => this.now(), this.interval);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
