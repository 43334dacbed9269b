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

const CONNECTED_TIMEOUT_MS = 5000
const BACKOFF_BASE_MS = 500
const BACKOFF_MAX_MS = 30000
const PAGE_SIZE = 100

const LOG_LEVELS = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 }

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

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
 * One channel of a client. Binding an event on it subscribes; removing its
 * last binding unsubscribes.
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
    this.alias = null
    this.error = null
    /** Optional: async ({channel, connectionId}) => subscribe-scoped JWT. */
    this.subscribeTokenFn = null
    this._subscribed = deferred()
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
    this._channels = new Map()
    this._queue = [] // frames waiting for a connection
    this._ws = null
    this._attempt = 0
    this._reconnectTimer = null
    this._connectedTimer = null
    this._heartbeatTimer = null
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

  channels(name) {
    let ch = this._channels.get(name)
    if (!ch) {
      ch = new Channel(this, name)
      this._channels.set(name, ch)
    }
    return ch
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
    for (const ch of this._channels.values()) ch.state = "unsubscribed"
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
      for (const ch of this._channels.values()) {
        if (ch.state === "subscribed" || ch.state === "subscribing") ch.state = "unsubscribed"
      }
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
    this._reconnectTimer = this._connectedTimer = this._heartbeatTimer = null
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
    // Re-subscribe every channel that has bindings, then flush queued frames.
    for (const ch of this._channels.values()) {
      if (ch.bindings.length > 0 && ch.state !== "failed") this._subscribe(ch)
    }
    const queued = this._queue
    this._queue = []
    for (const frame of queued) this._send(frame)
    this._connected.resolve(this)
    this._emit("@@connect", message)
  }

  async _subscribe(ch) {
    if (ch.state === "subscribed") return
    if (ch.state !== "subscribing") {
      ch.state = "subscribing"
      ch.error = null
      if (ch._settled) ch._subscribed = deferred()
      ch._settled = false
    }
    if (this.state !== "connected") return // sent by _onConnected
    const frame = { event: "hotsock.subscribe", channel: ch.name }
    if (ch.subscribeTokenFn) {
      try {
        const token = await ch.subscribeTokenFn({
          channel: ch.name,
          connectionId: this.connectionId,
        })
        frame.data = { token }
      } catch (err) {
        this._failChannel(ch, new HotsockError("SUBSCRIBE_TOKEN_FN_FAILED", String(err)))
        return
      }
    }
    this._sendNow(frame)
  }

  _failChannel(ch, error) {
    ch.state = "failed"
    ch.error = error
    ch._settled = true
    ch._subscribed.reject(error)
  }

  _removeBinding(binding) {
    const i = this._bindings.indexOf(binding)
    if (i < 0) return
    this._bindings.splice(i, 1)
    const ch = binding.channel
    if (ch && ch.bindings.length === 0 && (ch.state === "subscribed" || ch.state === "subscribing")) {
      ch.state = "unsubscribed"
      ch._settled = true
      this._send({ event: "hotsock.unsubscribe", channel: ch.name })
    }
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
    const ch = message.channel != null ? this._channelFor(message) : null
    switch (message.event) {
      case "hotsock.connected":
        this._onConnected(message)
        return
      case "hotsock.ping":
        this._send({ event: "hotsock.pong" })
        break
      case "hotsock.subscribed":
        if (ch) {
          ch.state = "subscribed"
          ch.uid = message.meta?.uid ?? null
          ch.umd = message.meta?.umd ?? null
          ch.alias = message.meta?.channelAlias ?? null
          if (message.data?.members) ch.members = message.data.members
          ch._settled = true
          ch._subscribed.resolve(ch)
        }
        break
      case "hotsock.unsubscribed":
        if (ch && ch.bindings.length === 0) ch.state = "unsubscribed"
        break
      case "hotsock.memberAdded":
      case "hotsock.memberRemoved":
      case "hotsock.memberUpdated":
        if (ch && message.data?.members) ch.members = message.data.members
        break
      case "hotsock.error": {
        const code = message.error?.code
        this._log("warn", "hotsock.error", code, message.error?.message, message.channel ?? "")
        if (ch) {
          if (code === "SUBSCRIBE_PERMISSION_DENIED" || code === "INVALID_SUBSCRIBE_TOKEN") {
            this._failChannel(ch, new HotsockError(code, message.error?.message, { channel: ch.name }))
          } else if (code === "ALREADY_SUBSCRIBED") {
            ch.state = "subscribed"
            ch._settled = true
            ch._subscribed.resolve(ch)
          } else if (code === "NOT_SUBSCRIBED" && ch.state !== "subscribing") {
            ch.state = "unsubscribed"
          }
        }
        break
      }
      default:
        break
    }
    this._dispatch(message, ch)
  }

  _channelFor(message) {
    const direct = this._channels.get(message.channel)
    if (direct) return direct
    for (const ch of this._channels.values()) {
      if (ch.alias && ch.alias === message.channel) return ch
    }
    return null
  }

  _dispatch(message, ch) {
    for (const b of [...this._bindings]) {
      if (b.channel && b.channel !== ch) continue
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
