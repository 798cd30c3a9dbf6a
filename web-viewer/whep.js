// WHEP, receive side: discover ICE servers, POST an offer, trickle late candidates with
// PATCH, DELETE to leave. The parsing helpers at the top do no IO, so they are unit-tested.

/** ICE servers from `Link: <url>; rel="ice-server"; username=…; credential=…` values. */
export function parseIceServerLinks(header) {
  if (!header) return [];
  const servers = [];
  for (const link of header.split(/,\s*(?=<)/)) {
    const url = /^\s*<([^>]*)>/.exec(link);
    if (!url) continue;
    const params = {};
    for (const [, key, quoted, bare] of link.matchAll(/;\s*([\w-]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))/g)) {
      params[key.toLowerCase()] = quoted ?? bare;
    }
    if (params.rel !== "ice-server") continue;
    const server = { urls: url[1] };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

/** A trickle-ice-sdpfrag body (RFC 8840) carrying `candidates` for their media sections. */
export function candidateFragment(candidates, ufrag, pwd) {
  const lines = [];
  if (ufrag) lines.push(`a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`);
  let mid = null;
  for (const c of candidates) {
    if (c.sdpMid !== mid) {
      mid = c.sdpMid;
      lines.push(`a=mid:${mid}`);
    }
    lines.push(`a=${c.candidate}`);
  }
  return lines.map((l) => l + "\r\n").join("");
}

/** The offer's ICE credentials, which the server checks a trickled fragment against. */
export function iceCredentials(sdp) {
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(sdp);
  const pwd = /^a=ice-pwd:(\S+)/m.exec(sdp);
  return ufrag && pwd ? { ufrag: ufrag[1], pwd: pwd[1] } : null;
}

/** Why a WHEP request failed, and whether trying again could help. */
export class WhepError extends Error {
  constructor(status, message, retryAfterSeconds) {
    super(message);
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** 4xx other than "too many" cannot get better by asking again. */
  get retryable() {
    return !(this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429);
  }
}

async function problem(response) {
  const fallback = `the server answered ${response.status}`;
  const text = await response.text().catch(() => "");
  let detail = text.trim() || fallback;
  try {
    const json = JSON.parse(text);
    detail = json.detail || json.title || fallback;
  } catch {
    // Not problem+json; the text is the message.
  }
  const retryAfter = Number(response.headers.get("Retry-After"));
  const error = new WhepError(response.status, detail, Number.isFinite(retryAfter) ? retryAfter : undefined);
  // A full device may name a player page elsewhere (Link: <url>; rel="alternate").
  error.alternate = alternateLink(response.headers.get("Link"));
  return error;
}

/** The `rel="alternate"` URL among Link header values, if any. */
export function alternateLink(header) {
  for (const link of (header || "").split(/,\s*(?=<)/)) {
    const url = /^\s*<([^>]*)>/.exec(link);
    if (url && /;\s*rel="?alternate"?/.test(link) && /^https?:\/\//.test(url[1])) return url[1];
  }
  return null;
}

/** One viewer session against `endpoint`, optionally with a bearer token. */
export class WhepSession {
  constructor(endpoint, token) {
    this.endpoint = new URL(endpoint, location.href).href;
    this.token = token;
    this.url = null;
    this.pending = [];
    this.credentials = null;
  }

  headers(contentType) {
    const headers = {};
    if (contentType) headers["Content-Type"] = contentType;
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  /** The ICE servers the endpoint advertises (RFC 9725 §4.6), or none if it says nothing. */
  async iceServers() {
    const response = await fetch(this.endpoint, { method: "OPTIONS", headers: this.headers() });
    return response.ok ? parseIceServerLinks(response.headers.get("Link")) : [];
  }

  /** Sends the offer; resolves to the answer's SDP. */
  async offer(sdp) {
    this.credentials = iceCredentials(sdp);
    const response = await fetch(this.endpoint, {
      method: "POST",
      headers: this.headers("application/sdp"),
      body: sdp,
    });
    if (response.status !== 201) throw await problem(response);
    // A full device answers 307 to an overflow engine; fetch followed it, and the session
    // lives there (RFC 9725 §4.5): its Location is relative to where the answer came from.
    const answeredAt = response.url || this.endpoint;
    this.redirectedTo = response.redirected ? answeredAt : null;
    this.url = new URL(response.headers.get("Location"), answeredAt).href;
    const answer = await response.text();
    this.flush();
    return answer;
  }

  /** Queues a local candidate; sent as soon as the session exists. */
  trickle(candidate) {
    if (candidate && candidate.candidate) this.pending.push(candidate);
    this.flush();
  }

  flush() {
    if (!this.url || !this.pending.length) return;
    const { ufrag, pwd } = this.credentials || {};
    const body = candidateFragment(this.pending.splice(0), ufrag, pwd);
    fetch(this.url, {
      method: "PATCH",
      headers: this.headers("application/trickle-ice-sdpfrag"),
      body,
    }).catch(() => {
      // The connection itself reports whether ICE worked; nothing to add here.
    });
  }

  /** Leaves; `keepalive` lets the request outlive a closing page. */
  close() {
    if (!this.url) return;
    const url = this.url;
    this.url = null;
    fetch(url, { method: "DELETE", headers: this.headers(), keepalive: true }).catch(() => {});
  }
}

/** How long to wait before reconnect attempt `attempt` (0, 1, …): doubling, at most 5 s. */
export function retryDelayMs(attempt) {
  return Math.min(5000, 500 * 2 ** Math.max(0, attempt));
}
