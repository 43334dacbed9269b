// hotsock-lite: a small, dependency-free browser client for the Hotsock wire
// protocol that Sockhop speaks (see docs/protocol.md). Its API follows the
// shape of @hotsock/hotsock-js, so the example apps read like apps written
// against that library, plus a few helpers for the Client HTTP API:
//
//   const client = new HotsockClient("ws://127.0.0.1:4000/v1", {
//     connectTokenFn: async () => fetchMyToken(),
//   })
//   client.bind("@@connect", () => console.log("connected", client.connectionId))
//   const chat = client.channels("chat-1")
//   chat.bind("chat", (message) => console.log(message.data))   // subscribes
//   chat.sendMessage("chat", { data: { text: "hi" } })
//   const history = await client.listAllMessages("chat-1")
//   client.terminate()
//
// Aliases: a token may give a channel a second name (`alias`). The server always
// sends the real name as `channel` and names the alias only in
// `meta.channelAlias` of hotsock.subscribed / hotsock.unsubscribed; from those
// the client learns alias ↔ real (per connection) so a channel bound under its
// alias still gets the frames sent for the real name.

const CONNECTED_TIMEOUT_MS = 5000
// How long after hotsock.connected bound channels are subscribed. The server's
// auto-subscriptions (hotsock.subscribed with data.autoSubscribed) follow the
// greeting right away; waiting for them means a channel they already cover is
// not subscribed a second time (hotsock-js subscribes from a 250 ms loop).
const SUBSCRIBE_DELAY_MS = 250
// When the connect token names auto-subscribe channels, bound channels wait for
// those answers rather than for a fixed delay (a busy server may take longer
// than SUBSCRIBE_DELAY_MS), but never longer than this.
const AUTO_SUBSCRIBE_WAIT_MS = 5000
const BACKOFF_BASE_MS = 500
const BACKOFF_MAX_MS = 30000
const PAGE_SIZE = 100

const LOG_LEVELS = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 }

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

/**
 * The channels a connect token subscribes on connect (`autoSubscribe: true`,
 * exact names only), read from its payload without verifying it: the client
 * only uses it to know which hotsock.subscribed frames to wait for. An opaque or
 * unreadable token names none.
 */
export function autoSubscribeChannelsOf(token) {
  try {
    const payload = token.split(".")[1]
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/")
    const claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")))
    const channels = claims?.channels ?? {}
    return Object.keys(channels).filter(
      (name) => channels[name]?.autoSubscribe === true && !name.startsWith("#regex:") && !name.includes("*"),
    )
  } catch {
    return []
  }
}

/**
 * The millisecond Unix timestamp encoded in a ULID's first 10 characters
 * (Crockford base32), or NaN when `id` is not a ULID.
 */
export function ulidTime(id) {
  if (typeof id !== "string" || id.length < 10) return NaN
  let ms = 0
  for (const ch of id.slice(0, 10).toUpperCase()) {
    const digit = CROCKFORD.indexOf(ch)
    if (digit < 0) return NaN
    ms = ms * 32 + digit
  }
  return ms
}

/** `connections` and `current`, each once, the last 10 (what a resume may name). */
export function ownConnections(connections, current) {
  return [...connections.filter((id) => id !== current), current].slice(-10)
}

/** ws(s)://host/v1 → http(s)://host (the Client HTTP API's base URL). */
export function httpBaseFromWsUrl(wsUrl) {
  const url = new URL(wsUrl)
  url.protocol = url.protocol === "wss:" ? "https:" : "http:"
  url.search = ""
  url.hash = ""
  let path = url.pathname.replace(/\/+$/, "")
  if (path.endsWith("/v1")) path = path.slice(0, -3)
  url.pathname = path || "/"
  return url.toString().replace(/\/+$/, "")
}

/** An error returned by the Client HTTP API or the WebSocket (`hotsock.error`). */
export class HotsockError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code)
    this.name = "HotsockError"
    this.code = code
    Object.assign(this, extra)
  }
}

function matches(pattern, event) {
  if (pattern instanceof RegExp) {
    pattern.lastIndex = 0
    return pattern.test(event)
  }
  return pattern === event
}

/** A promise with its resolve/reject exposed. */
function deferred() {
  let resolve, reject
  const promise = new Promise((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(() => {})
  return { promise, resolve, reject }
}

class Binding {
  constructor(client, event, fn, channel) {
    this.client = client
    this.event = event
    this.fn = fn
    this.channel = channel // a Channel, or null for a client-wide binding
  }

  unbind() {
    this.client._removeBinding(this)
  }
}

/**
 * One channel of a client, under the name the app gave it (a real name or an
 * alias). Binding an event on it subscribes; removing its last binding
 * unsubscribes (except for auto-subscribed channels).
 */
export class Channel {
  constructor(client, name) {
    this.client = client
    this.name = name
    /** "unsubscribed" | "subscribing" | "subscribed" | "failed" */
    this.state = "unsubscribed"
    this.uid = null
    this.umd = null
    this.members = []
    /** From the server's hotsock.subscribed: the real name and the alias (or null). */
    this.realName = null
    this.alias = null
    /** The server subscribed it on connect (`data.autoSubscribed`): never (un)subscribed by us. */
    this.autoSubscribed = false
    this.error = null
    /** Optional: async ({channel, connectionId}) => subscribe-scoped JWT. */
    this.subscribeTokenFn = null
    /**
     * Resume (Sockhop's extension): the last position seen on a resumable
     * subscription (`data.position` of hotsock.subscribed, then each message's
     * id or other frame's `position`), named when the channel is subscribed
     * again after a drop, with the connections that held it since (their own
     * messages sent without echo are not replayed); and whether that resume
     * recovered everything (`true` / `false`, `null` when it was not a resume).
     */
    this.position = null
    this.positionConnections = []
    this.recovered = null
    this._subscribed = deferred()
    this._settled = false
    this._awaiting = false // a hotsock.subscribe was sent on this socket and is unanswered
  }

  bind(event, fn) {
    return this.client.bind(event, fn, { channel: this.name })
  }

  /** Without an event: every binding on this channel (and unsubscribe). */
  unbind(event, fn) {
    this.client.unbind(event, { channel: this.name, fn })
  }

  sendMessage(event, { data } = {}) {
    return this.client.sendMessage(event, { channel: this.name, data })
  }

  /** Writes a storage entry on this channel (see HotsockClient#setStorage). */
  setStorage(key, data) {
    this.client.setStorage(this.name, key, data)
  }

  /** Resolves once the subscription is confirmed; rejects if it is refused. */
  subscribed() {
    if (this.state === "subscribed") return Promise.resolve(this)
    return this._subscribed.promise
  }

  get bindings() {
    return this.client._bindings.filter((b) => b.channel === this)
  }
}

export class HotsockClient {
  constructor(wsUrl, options = {}) {
    if (typeof options.connectTokenFn !== "function") {
      throw new TypeError("HotsockClient needs options.connectTokenFn")
    }
    this.wsUrl = wsUrl
    this.httpBaseUrl = options.httpBaseUrl || httpBaseFromWsUrl(wsUrl)
    this.connectTokenFn = options.connectTokenFn
    this.connectTokenFnMaxAttempts = options.connectTokenFnMaxAttempts ?? 2
    // Sockhop's resume extension (docs/protocol.md, "Resume"): on by default;
    // a server or token without it answers a plain subscribe.
    this.resume = options.resume ?? true
    this.heartbeatIntervalSeconds = options.heartbeatIntervalSeconds ?? null
    this.logLevel = options.logLevel ?? "warn"
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket

    this.connectionId = null
    this.connectionSecret = null
    this.connectionExpiresAt = null
    this.uid = null
    this.umd = null
    /** "initialized" | "connecting" | "connected" | "disconnected" | "terminated" */
    this.state = "initialized"

    this._bindings = []
    this._channels = new Map() // by the name the app used (real name or alias)
    // Learned from meta.channelAlias; they hold for one connection only.
    this._aliasToReal = new Map()
    this._realToAlias = new Map()
    this._queue = [] // frames waiting for a connection
    this._ws = null
    this._attempt = 0
    this._reconnectTimer = null
    this._connectedTimer = null
    this._heartbeatTimer = null
    this._subscribeTimer = null
    this._subscribeReady = false // the auto-subscriptions were answered (or the wait is over)
    this._autoPending = new Set() // auto-subscribe channels of this connection's token not yet answered
    this._autoWaitTimer = null
    this._connected = deferred()

    if (!options.lazyConnection) this._connect()
  }

  // ---- public API -------------------------------------------------------

  /**
   * Calls `fn(message)` for every received message whose event matches
   * `event` (a string or RegExp). With `{channel}`, only messages on that
   * channel, and the channel is subscribed. Special client events:
   * "@@connect", "@@disconnect", "@@message", "@@messageSent", "@@error".
   */
  bind(event, fn, { channel } = {}) {
    if (typeof fn !== "function") throw new TypeError("bind needs a function")
    const ch = channel != null ? this.channels(channel) : null
    const binding = new Binding(this, event, fn, ch)
    this._bindings.push(binding)
    if (ch && ch.state !== "subscribed" && ch.state !== "subscribing") {
      this._subscribe(ch)
    }
    if (this.state === "initialized") this._connect()
    return binding
  }

  /** Removes bindings for `event` (all events when omitted), optionally only `fn`'s. */
  unbind(event, { channel, fn } = {}) {
    const ch = channel != null ? this._channels.get(channel) : null
    if (channel != null && !ch) return
    for (const b of [...this._bindings]) {
      if (ch ? b.channel !== ch : b.channel !== null) continue
      if (event !== undefined && b.event !== event && String(b.event) !== String(event)) continue
      if (fn && b.fn !== fn) continue
      this._removeBinding(b)
    }
  }

  /** The Channel for `name`, a real channel name or an alias the token gives one. */
  channels(name) {
    let ch = this._channels.get(name)
    if (!ch) {
      ch = new Channel(this, name)
      this._channels.set(name, ch)
    }
    return ch
  }

  /** What this connection learned from meta.channelAlias: {alias: realName}. */
  get channelAliasToReal() {
    return Object.fromEntries(this._aliasToReal)
  }

  /** {realName: alias}, the other way round. */
  get channelRealToAlias() {
    return Object.fromEntries(this._realToAlias)
  }

  /** Publishes `{event, channel, data}`; waits for the channel's subscription first. */
  async sendMessage(event, { channel, data } = {}) {
    const frame = { event }
    if (channel != null) frame.channel = channel
    if (data !== undefined) frame.data = data
    const ch = channel != null ? this._channels.get(channel) : null
    if (ch && ch.state === "subscribing") {
      try {
        await ch.subscribed()
      } catch {
        // send anyway: the server answers with a meaningful hotsock.error
      }
    }
    this._send(frame)
  }

  /** Sends a frame as is (a string of JSON, or an object). */
  sendRawMessage(raw) {
    this._send(typeof raw === "string" ? JSON.parse(raw) : raw)
  }

  /** Closes the connection for good and forgets every binding. */
  terminate() {
    this.state = "terminated"
    this._clearTimers()
    this._bindings = []
    this._queue = []
    this._forgetAliases()
    for (const ch of this._channels.values()) {
      ch.state = "unsubscribed"
      ch._awaiting = false
    }
    if (this._ws) {
      const ws = this._ws
      this._ws = null
      try {
        ws.close(1000, "terminated")
      } catch {
        // already closed
      }
    }
  }

  /** Resolves once `hotsock.connected` has arrived (now or later). */
  connected() {
    if (this.state === "connected") return Promise.resolve(this)
    return this._connected.promise
  }

  /**
   * POSTs `body` to the Client HTTP API operation `op` with this connection's
   * credentials; resolves to the parsed reply, throws a HotsockError on 4xx/5xx.
   */
  async http(op, body = {}) {
    await this.connected()
    const query = new URLSearchParams({
      connectionId: this.connectionId,
      connectionSecret: this.connectionSecret,
    })
    const response = await fetch(`${this.httpBaseUrl}/connection/${op}?${query}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    })
    const text = await response.text()
    let reply = null
    try {
      reply = text ? JSON.parse(text) : null
    } catch {
      reply = { raw: text }
    }
    if (!response.ok) {
      const err = reply?.error ?? {}
      throw new HotsockError(err.code ?? `HTTP_${response.status}`, err.message ?? text, {
        status: response.status,
        op,
      })
    }
    return reply
  }

  /** One page of stored messages (the Client HTTP API's listMessages). */
  listMessages(channel, options = {}) {
    return this.http("listMessages", { channel, ...options })
  }

  /**
   * Every stored message of `channel` visible to this connection, oldest
   * first: pages forward with `after` until a page has fewer than 100.
   * `options` may set `expandReactions` (and a starting `after`).
   */
  async listAllMessages(channel, options = {}) {
    const all = []
    let after = options.after
    for (;;) {
      const body = { ...options }
      if (after !== undefined) body.after = after
      else delete body.after
      const { messages = [] } = await this.listMessages(channel, body)
      all.push(...messages)
      if (messages.length < PAGE_SIZE) return all
      after = messages[messages.length - 1].id
    }
  }

  /** Every reaction on one stored message: [{reaction, uid, umd?}]. */
  async listReactions(channel, messageId) {
    const { reactions = [] } = await this.http("listReactions", { channel, messageId })
    return reactions
  }

  /** Adds or removes a reaction (`hotsock.messageReaction`). */
  react(channel, messageId, reaction, action = "add") {
    this._send({
      event: "hotsock.messageReaction",
      channel,
      data: { messageId, reaction, action },
    })
  }

  /**
   * Writes one channel storage entry (`hotsock.channelStorageSet` over the
   * socket); `null` or `{}` clears it. Observers, this connection included
   * when it observes the key, get `hotsock.channelStorageUpdated`.
   */
  setStorage(channel, key, data) {
    this._send({ event: "hotsock.channelStorageSet", channel, key, data })
  }

  /**
   * Changes this user's metadata with a umd-scoped token from the app's
   * backend (`hotsock.umdUpdate`): on one channel's subscription, or without
   * a channel on the connection. Presence members, this connection included,
   * get `hotsock.memberUpdated`; a refusal arrives as `hotsock.error`.
   */
  umdUpdate(token, { channel } = {}) {
    const frame = { event: "hotsock.umdUpdate", data: { token } }
    if (channel !== undefined) frame.channel = channel
    this._send(frame)
  }

  /** One storage entry over the Client HTTP API: {data, meta}, both null when unset. */
  async getStorage(channel, key) {
    const reply = await this.http("channelStorageGet", { channel, key })
    return { data: reply?.data ?? null, meta: reply?.meta ?? null }
  }

  /**
   * The storage entries this connection may read, in key order:
   * [{key, data, meta}]; `keys` (at most 100) narrows, `after` pages.
   */
  async listStorage(channel, { keys, after } = {}) {
    const body = { channel }
    if (keys !== undefined) body.keys = keys
    if (after !== undefined) body.after = after
    const { items = [] } = await this.http("channelStorageList", body)
    return items
  }

  // ---- internals --------------------------------------------------------

  _log(level, ...args) {
    if (LOG_LEVELS[level] >= (LOG_LEVELS[this.logLevel] ?? 2)) {
      const fn = console[level] ?? console.log
      fn.call(console, "[hotsock-lite]", ...args)
    }
  }

  async _token() {
    let lastError
    const attempts = Math.max(1, this.connectTokenFnMaxAttempts)
    for (let i = 0; i < attempts; i++) {
      try {
        const token = await this.connectTokenFn()
        if (typeof token === "string" && token) return token
        lastError = new Error("connectTokenFn returned no token")
      } catch (err) {
        lastError = err
      }
    }
    throw lastError
  }

  async _connect() {
    if (this.state === "terminated" || this.state === "connecting" || this.state === "connected") {
      return
    }
    this.state = "connecting"
    let token
    try {
      token = await this._token()
    } catch (err) {
      this._log("warn", "could not get a connect token", err)
      this._emit("@@error", err)
      this.state = "disconnected"
      this._scheduleReconnect()
      return
    }
    if (this.state !== "connecting") return // terminated meanwhile
    this._autoPending = new Set(autoSubscribeChannelsOf(token))
    const url = new URL(this.wsUrl)
    url.searchParams.set("token", token)
    let ws
    try {
      ws = new this.WebSocket(url.toString())
    } catch (err) {
      this._emit("@@error", err)
      this.state = "disconnected"
      this._scheduleReconnect()
      return
    }
    this._ws = ws
    ws.onopen = () => {
      if (ws !== this._ws) return
      // The server must say hotsock.connected promptly, or we try again.
      clearTimeout(this._connectedTimer)
      this._connectedTimer = setTimeout(() => {
        this._log("warn", "no hotsock.connected within 5 s; reconnecting")
        try {
          ws.close(4000, "connected timeout")
        } catch {
          // ignore
        }
      }, CONNECTED_TIMEOUT_MS)
    }
    ws.onmessage = (event) => {
      if (ws !== this._ws) return
      this._receive(event)
    }
    ws.onerror = (event) => {
      if (ws !== this._ws) return
      this._emit("@@error", event)
    }
    ws.onclose = (event) => {
      if (ws !== this._ws) return
      this._ws = null
      this._clearTimers()
      const wasConnected = this.state === "connected"
      if (this.state !== "terminated") this.state = "disconnected"
      this.connectionId = null
      this.connectionSecret = null
      this._dropSubscriptions()
      if (wasConnected) this._connected = deferred()
      this._emit("@@disconnect", event)
      if (this.state !== "terminated") this._scheduleReconnect()
    }
  }

  _scheduleReconnect() {
    if (this.state === "terminated" || this._reconnectTimer) return
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this._attempt)
    const delay = exp / 2 + Math.random() * (exp / 2)
    this._attempt++
    this._log("info", `reconnecting in ${Math.round(delay)} ms`)
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null
      this._connect()
    }, delay)
  }

  _clearTimers() {
    clearTimeout(this._reconnectTimer)
    clearTimeout(this._connectedTimer)
    clearInterval(this._heartbeatTimer)
    clearTimeout(this._subscribeTimer)
    clearTimeout(this._autoWaitTimer)
    this._reconnectTimer = this._connectedTimer = this._heartbeatTimer = this._subscribeTimer = null
    this._autoWaitTimer = null
    this._subscribeReady = false
  }

  _onConnected(message) {
    clearTimeout(this._connectedTimer)
    this._connectedTimer = null
    this._attempt = 0
    this.state = "connected"
    this.connectionId = message.data.connectionId
    this.connectionSecret = message.data.connectionSecret
    this.connectionExpiresAt = message.data.connectionExpiresAt
    this.uid = message.meta?.uid ?? null
    this.umd = message.meta?.umd ?? null
    if (this.heartbeatIntervalSeconds) {
      this._heartbeatTimer = setInterval(
        () => this._send({ event: "hotsock.heartbeat" }),
        this.heartbeatIntervalSeconds * 900,
      )
    }
    // Queued frames go out now; subscriptions after the server's auto-subscriptions.
    const queued = this._queue
    this._queue = []
    for (const frame of queued) this._send(frame)
    clearTimeout(this._subscribeTimer)
    this._subscribeTimer = setTimeout(() => {
      this._subscribeTimer = null
      this._subscribeWhenAutoAnswered()
    }, SUBSCRIBE_DELAY_MS)
    clearTimeout(this._autoWaitTimer)
    this._autoWaitTimer = setTimeout(() => {
      this._autoWaitTimer = null
      this._autoPending.clear()
      this._subscribeWhenAutoAnswered()
    }, AUTO_SUBSCRIBE_WAIT_MS)
    this._connected.resolve(this)
    this._emit("@@connect", message)
  }

  /**
   * Once SUBSCRIBE_DELAY_MS after hotsock.connected has passed and every
   * auto-subscription the token names was answered (or AUTO_SUBSCRIBE_WAIT_MS
   * is over): subscribes bound channels ([`_subscribeBound`]).
   */
  _subscribeWhenAutoAnswered() {
    if (this._subscribeReady || this._subscribeTimer || this._autoPending.size > 0) return
    if (this.state !== "connected") return
    clearTimeout(this._autoWaitTimer)
    this._autoWaitTimer = null
    this._subscribeBound()
  }

  /** An auto-subscription of this connection was answered (subscribed or refused). */
  _autoAnswered(realName) {
    if (realName == null || !this._autoPending.delete(realName)) return
    this._subscribeWhenAutoAnswered()
  }

  /**
   * Subscribes every bound channel the server has not subscribed by itself, by
   * the name it was bound under (also those that failed on an earlier connection).
   */
  _subscribeBound() {
    this._subscribeReady = true
    for (const ch of this._channels.values()) {
      if (ch.bindings.length > 0 && ch.state !== "subscribed") this._subscribe(ch)
    }
  }

  /**
   * The socket is gone and its subscriptions and aliases with it. Bound channels
   * wait ("subscribing") for the next connection: the server's auto-subscriptions
   * come first again, and _subscribeBound subscribes whatever they did not cover.
   */
  _dropSubscriptions() {
    this._forgetAliases()
    for (const ch of this._channels.values()) {
      ch._awaiting = false
      ch.autoSubscribed = false
      ch.uid = ch.umd = null
      ch.members = []
      if (ch.bindings.length > 0) this._markSubscribing(ch)
      else ch.state = "unsubscribed"
    }
  }

  _forgetAliases() {
    this._aliasToReal.clear()
    this._realToAlias.clear()
  }

  /**
   * For a name the app used (real name or alias): its Channel and the one bound
   * under the channel's other name, each once. They share one subscription.
   */
  _sameChannel(name) {
    return this._existing([name, this._aliasToReal.get(name), this._realToAlias.get(name)])
  }

  /** For a server frame, whose `channel` is the real name: that Channel and its alias's. */
  _channelsOfReal(realName) {
    return this._existing([realName, this._realToAlias.get(realName)])
  }

  _existing(names) {
    const found = []
    for (const name of names) {
      const ch = name == null ? undefined : this._channels.get(name)
      if (ch && !found.includes(ch)) found.push(ch)
    }
    return found
  }

  async _subscribe(ch) {
    if (ch.state === "subscribed" || ch._awaiting) return
    const same = this._sameChannel(ch.name)
    // Already subscribed under its other name (say an auto-subscription that came
    // before this bind): share that subscription instead of asking again.
    const confirmed = same.find((o) => o.state === "subscribed")
    if (confirmed) {
      this._confirm(ch, confirmed)
      return
    }
    this._markSubscribing(ch)
    if (!this._subscribeReady) return // _subscribeBound sends it
    if (same.some((o) => o._awaiting)) return // on its way under the other name
    ch._awaiting = true
    const frame = { event: "hotsock.subscribe", channel: ch.name }
    if (this.resume) {
      frame.data = {
        resume: ch.position ? { position: ch.position, connectionIds: ch.positionConnections } : true,
      }
    }
    if (ch.subscribeTokenFn) {
      const ws = this._ws
      try {
        const token = await ch.subscribeTokenFn({
          channel: ch.name,
          connectionId: this.connectionId,
        })
        frame.data = { ...frame.data, token }
      } catch (err) {
        this._failChannel(ch, new HotsockError("SUBSCRIBE_TOKEN_FN_FAILED", String(err)))
        return
      }
      if (ws !== this._ws || !ch._awaiting) return // the socket closed meanwhile
    }
    this._sendNow(frame)
  }

  _markSubscribing(ch) {
    if (ch.state === "subscribing") return
    ch.state = "subscribing"
    ch.error = null
    if (ch._settled) ch._subscribed = deferred()
    ch._settled = false
  }

  /** Marks `ch` subscribed with `info`'s details and resolves its subscribed(). */
  _confirm(ch, { realName, alias, autoSubscribed, uid, umd, members }) {
    ch.state = "subscribed"
    ch.realName = realName ?? ch.name
    ch.alias = alias ?? null
    ch.autoSubscribed = autoSubscribed === true
    ch.uid = uid ?? null
    ch.umd = umd ?? null
    ch.members = members ?? []
    ch.error = null
    this._settle(ch, null)
  }

  _failChannel(ch, error) {
    ch.state = "failed"
    ch.error = error
    this._settle(ch, error)
  }

  /** Ends the wait of subscribed(): a fresh promise if the last one had settled. */
  _settle(ch, error) {
    ch._awaiting = false
    if (ch._settled) ch._subscribed = deferred()
    ch._settled = true
    if (error) ch._subscribed.reject(error)
    else ch._subscribed.resolve(ch)
  }

  _removeBinding(binding) {
    const i = this._bindings.indexOf(binding)
    if (i < 0) return
    this._bindings.splice(i, 1)
    const ch = binding.channel
    if (!ch || ch.bindings.length > 0) return
    const same = this._sameChannel(ch.name)
    if (same.some((o) => o.bindings.length > 0)) return // still bound under its other name
    if (ch.autoSubscribed) return // the server's; hotsock-js never unsubscribes those
    const confirmed = same.find((o) => o.state === "subscribed")
    const sent = confirmed || same.some((o) => o._awaiting)
    for (const o of same) {
      if (o.state === "subscribed" || o.state === "subscribing") o.state = "unsubscribed"
      o._awaiting = false
      o.position = null // unsubscribed on purpose: a later subscribe starts afresh
    }
    // Once confirmed, by the real name (as hotsock-js does); else by the name sent.
    if (sent) this._send({ event: "hotsock.unsubscribe", channel: confirmed?.realName ?? ch.name })
  }

  _send(frame) {
    if (this.state === "terminated") return
    if (this.state !== "connected" || !this._ws) {
      this._queue.push(frame)
      return
    }
    this._sendNow(frame)
  }

  _sendNow(frame) {
    const raw = JSON.stringify(frame)
    this._ws.send(raw)
    this._emit("@@messageSent", raw)
  }

  _receive(event) {
    let message
    try {
      message = JSON.parse(event.data)
    } catch {
      this._log("warn", "ignoring a non-JSON frame", event.data)
      return
    }
    this._emit("@@message", event)
    const name = message.channel
    if (message.event === "hotsock.subscribed" && message.meta?.channelAlias != null && name != null) {
      this._aliasToReal.set(message.meta.channelAlias, name)
      this._realToAlias.set(name, message.meta.channelAlias)
    }
    // Errors name the channel as we sent it (maybe the alias); all else, the real name.
    let targets = []
    if (name != null) {
      targets = message.event === "hotsock.error" ? this._sameChannel(name) : this._channelsOfReal(name)
    }
    switch (message.event) {
      case "hotsock.connected":
        this._onConnected(message)
        return
      case "hotsock.ping":
        // Straight back, even before hotsock.connected (not through the queue).
        if (this._ws) this._sendNow({ event: "hotsock.pong" })
        break
      case "hotsock.subscribed":
        this._onSubscribed(message, targets)
        break
      case "hotsock.unsubscribed":
        this._lostSubscription(targets)
        break
      case "hotsock.memberAdded":
      case "hotsock.memberRemoved":
      case "hotsock.memberUpdated":
        if (message.data?.members) for (const ch of targets) ch.members = message.data.members
        this._advance(targets, message.position)
        break
      case "hotsock.channelStorageUpdated":
        this._advance(targets, message.position)
        break
      case "hotsock.error":
        this._onError(message, targets)
        break
      default:
        // A message of a resumable subscription: the position to resume after.
        if (message.id != null && !String(message.event).startsWith("hotsock.")) {
          this._advance(targets, message.id)
        }
        break
    }
    this._dispatch(message, targets)
  }

  /**
   * A resumable subscription's frame at `position`: where it stands now. The
   * connections that held it stay named (a replayed frame may come before
   * what an earlier one published without echo); the last 10 are kept.
   */
  _advance(targets, position) {
    if (position == null) return
    for (const ch of targets) {
      if (ch.position == null) continue
      ch.position = position
      ch.positionConnections = ownConnections(ch.positionConnections, this.connectionId)
    }
  }

  _onSubscribed(message, targets) {
    // Unasked (an auto-subscription nobody bound yet): kept so a later bind knows.
    if (targets.length === 0 && message.channel != null) targets.push(this.channels(message.channel))
    const info = {
      realName: message.channel,
      alias: message.meta?.channelAlias,
      autoSubscribed: message.data?.autoSubscribed === true,
      uid: message.meta?.uid ?? this.uid,
      umd: message.meta?.umd ?? this.umd,
      members: message.data?.members,
    }
    for (const ch of targets) {
      this._confirm(ch, info)
      ch.recovered = typeof message.data?.recovered === "boolean" ? message.data.recovered : null
      const position = message.data?.position ?? null
      // Recovered with frames to follow, it still stands where it named, and
      // the connections since then are still its own.
      const own = ch.recovered === true && position === ch.position ? ch.positionConnections : []
      ch.position = position
      ch.positionConnections = position == null ? [] : ownConnections(own, this.connectionId)
    }
    if (info.autoSubscribed) this._autoAnswered(message.channel)
  }

  /**
   * The server has no subscription (its own hotsock.unsubscribed, or a
   * NOT_SUBSCRIBED error): forget its details and, like hotsock-js, subscribe
   * again while the app still has bindings on it.
   */
  _lostSubscription(targets) {
    for (const ch of targets) {
      ch.uid = ch.umd = null
      ch.members = []
      if (ch._awaiting) continue // a newer subscribe is on its way; its answer decides
      ch.state = "unsubscribed"
      ch.autoSubscribed = false
    }
    for (const ch of targets) {
      if (ch.state === "unsubscribed" && ch.bindings.length > 0) this._subscribe(ch)
    }
  }

  _onError(message, targets) {
    const code = message.error?.code
    this._log("warn", "hotsock.error", code, message.error?.message, message.channel ?? "")
    this._autoAnswered(message.channel) // a refused auto-subscription is answered too
    switch (code) {
      case "SUBSCRIBE_PERMISSION_DENIED":
      case "INVALID_SUBSCRIBE_TOKEN": {
        const error = new HotsockError(code, message.error?.message, { channel: message.channel })
        for (const ch of targets) if (ch.state !== "subscribed") this._failChannel(ch, error)
        break
      }
      case "ALREADY_SUBSCRIBED": {
        // hotsock-js takes it as a confirmation.
        const confirmed = targets.find((o) => o.state === "subscribed")
        for (const ch of targets) {
          if (ch.state === "subscribed") continue
          if (!confirmed) ch.realName = this._aliasToReal.get(ch.name) ?? ch.name
          this._confirm(ch, confirmed ?? ch)
        }
        break
      }
      case "NOT_SUBSCRIBED":
        this._lostSubscription(targets)
        break
      default:
        break
    }
  }

  _dispatch(message, targets) {
    for (const b of [...this._bindings]) {
      // A frame reaching a channel under both its names still calls each binding once.
      if (b.channel && !targets.includes(b.channel)) continue
      if (!matches(b.event, message.event)) continue
      try {
        b.fn(message)
      } catch (err) {
        this._log("error", "a binding threw", err)
      }
    }
  }

  _emit(special, arg) {
    for (const b of [...this._bindings]) {
      if (b.channel || b.event !== special) continue
      try {
        b.fn(arg)
      } catch (err) {
        this._log("error", `a ${special} binding threw`, err)
      }
    }
  }
}

export default HotsockClient
