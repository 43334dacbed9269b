// The Sockhop web console: a static page that connects to a stage with the
// bundled client (examples/lib/hotsock-lite.js, served next to this file as
// ./hotsock-lite.js) and shows every frame in and out. It has no privileges
// of its own: it can do what the token or API key pasted into it allows, and
// nothing else. Tokens and the API key stay in this tab (sessionStorage), are
// never written into a URL or localStorage, and go only to the stage the page
// talks to.
//
// Where things are:
//   - the HTTP API is the directory the page is served from (…/console →
//     …/), or the `httpUrl` query parameter;
//   - the WebSocket URL is the `wssUrl` query parameter (as in Hotsock's
//     console), else the stage's own (GET console/config);
//   - the stage explains tokens and permissions (POST console/explain) with
//     the rules it enforces, so nothing here re-implements them;
//   - on the local stage, POST dev/token mints dev tokens and GET dev/events
//     streams the backend events.

import { HotsockClient, ulidTime } from "./hotsock-lite.js"

const $ = (id) => document.querySelector(`[data-testid="${id}"]`)
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue
    if (name === "class") node.className = value
    else if (name === "text") node.textContent = value
    else if (name === "html") node.innerHTML = value
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value === true ? "" : value)
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue
    node.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return node
}

// ------------------------------------------------------------------ where

const query = new URLSearchParams(location.search)
const httpBase = (query.get("httpUrl") || new URL(".", location.href).href).replace(/\/+$/, "")

const SESSION = {
  token: "sockhop-console.token",
  apiKey: "sockhop-console.apiKey",
  claims: "sockhop-console.mintClaims",
}
const kept = {
  get: (name) => {
    try {
      return sessionStorage.getItem(name) ?? ""
    } catch {
      return ""
    }
  },
  set: (name, value) => {
    try {
      if (value) sessionStorage.setItem(name, value)
      else sessionStorage.removeItem(name)
    } catch {
      // storage unavailable: memory only
    }
  },
}

const EVENT_TYPES = [
  "hotsock.connected",
  "hotsock.disconnected",
  "hotsock.connectionUpdated",
  "hotsock.subscribed",
  "hotsock.unsubscribed",
  "hotsock.channelUpdated",
  "hotsock.messagePublished",
  "hotsock.channelStorageUpdated",
  "hotsock.memberAdded",
  "hotsock.memberUpdated",
  "hotsock.memberRemoved",
  "hotsock.messageReactionAdded",
  "hotsock.messageReactionRemoved",
]

const DEFAULT_CLAIMS = {
  uid: "dev-user",
  umd: { name: "Dev User" },
  channels: {
    "console-demo": {
      subscribe: true,
      historyStart: 0,
      getInfo: true,
      messages: {
        "*": { publish: true, echo: true, store: 3600, react: true },
      },
      storage: {
        "*": { observe: true, get: true, set: true },
      },
    },
  },
}

const MAX_ENTRIES = 1000

const state = {
  wssUrl: "",
  config: { errorCodes: {} },
  stage: "unknown", // "local" | "deployed"
  token: "",
  claims: null,
  client: null,
  attempt: null, // {connected, explained} for the client's current socket
  channels: new Set(), // subscribed from this console (re-bound on Reconnect)
  bindings: new Map(),
  lastSent: new Map(), // channel -> the last frame sent for it (to explain an error)
  frames: [],
  events: [],
  seen: { channels: new Set(), events: new Set(), keys: new Set() },
  channelView: { name: "", loading: false, again: false, timer: null, poll: null },
}

// ------------------------------------------------------------------ JSON

const escapeHtml = (text) =>
  text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c])

/** JSON text as HTML with its keys, strings, numbers and literals marked. */
function highlight(json) {
  return escapeHtml(json).replace(
    /(&quot;(?:\\u[0-9a-fA-F]{4}|\\[^u]|(?!&quot;)[^\\])*&quot;)(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g,
    (match, string, colon, literal) => {
      if (string) return `<span class="${colon ? "j-key" : "j-str"}">${string}</span>${colon ?? ""}`
      if (literal) return `<span class="j-lit">${literal}</span>`
      return `<span class="j-num">${match}</span>`
    },
  )
}

const pretty = (value) => JSON.stringify(value, null, 2)

function setJson(node, value) {
  node.innerHTML = highlight(typeof value === "string" ? value : pretty(value))
}

// ------------------------------------------------------------------ tokens

function decodePart(part) {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4)
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
  return JSON.parse(new TextDecoder().decode(bytes))
}

/** The header and claims of a compact JWT (not verified: the stage does that). */
export function decodeJwt(token) {
  const parts = token.split(".")
  if (parts.length !== 3) throw new Error("a JWT has three parts separated by dots")
  return { header: decodePart(parts[0]), claims: decodePart(parts[1]) }
}

function duration(seconds) {
  const s = Math.abs(Math.round(seconds))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const parts = []
  if (d) parts.push(`${d} d`)
  if (h) parts.push(`${h} h`)
  if (m) parts.push(`${m} min`)
  parts.push(`${s % 60} s`)
  return parts.slice(0, 3).join(" ")
}

const isoOf = (seconds) => new Date(seconds * 1000).toISOString().replace(".000Z", "Z")

function renderExpiry() {
  const node = $("expiry")
  const claims = state.claims
  if (!claims) return
  const now = Date.now() / 1000
  const lines = []
  let past = false
  if (typeof claims.exp === "number") {
    const left = claims.exp - now
    past = left < 0
    lines.push(
      left >= 0
        ? `expires in ${duration(left)} (exp ${isoOf(claims.exp)}); a connection opened before then lives on, up to 2 h`
        : `expired ${duration(left)} ago (exp ${isoOf(claims.exp)}): the stage refuses it`,
    )
  } else {
    past = true
    lines.push("no numeric exp: the stage refuses it (TOKEN_MISSING_EXPIRY)")
  }
  if (typeof claims.nbf === "number" && claims.nbf > now) {
    lines.push(`not valid for another ${duration(claims.nbf - now)} (nbf ${isoOf(claims.nbf)})`)
  }
  if (typeof claims.iat === "number") lines.push(`issued ${isoOf(claims.iat)}`)
  node.textContent = lines.join(" · ")
  node.classList.toggle("past", past)
  node.dataset.left = typeof claims.exp === "number" ? String(Math.round(claims.exp - now)) : ""
}

function inspect(token) {
  state.claims = null
  $("inspector-empty").hidden = Boolean(token)
  document.querySelector(".inspected").hidden = !token
  $("verdict").className = "verdict"
  $("verdict").textContent = token ? "asking the stage…" : ""
  $("verdict").dataset.code = ""
  $("channel-keys").replaceChildren()
  $("explanation").replaceChildren()
  if (!token) return
  try {
    const { header, claims } = decodeJwt(token)
    state.claims = claims
    setJson($("token-header"), header)
    setJson($("token-claims"), claims)
    renderExpiry()
    learnFromClaims(claims)
    renderChannelKeys(claims)
  } catch (err) {
    $("token-header").textContent = ""
    $("token-claims").textContent = `not a JWT the console can read: ${err.message}`
    $("expiry").textContent = ""
  }
}

function learnFromClaims(claims) {
  const channels = claims?.channels
  if (!channels || typeof channels !== "object") return
  for (const [key, directives] of Object.entries(channels)) {
    if (!key.includes("*") && !key.startsWith("#")) state.seen.channels.add(key)
    if (typeof directives?.alias === "string") state.seen.channels.add(directives.alias)
    for (const event of Object.keys(directives?.messages ?? {})) {
      if (!event.includes("*") && !event.startsWith("#")) state.seen.events.add(event)
    }
    for (const key of Object.keys(directives?.storage ?? {})) {
      if (!key.includes("*") && !key.startsWith("#")) state.seen.keys.add(key)
    }
  }
  refreshDatalists()
}

function refreshDatalists() {
  const fill = (id, values) => {
    const list = document.getElementById(id)
    list.replaceChildren(...[...values].sort().map((v) => el("option", { value: v })))
  }
  fill("known-channels", state.seen.channels)
  fill("known-events", state.seen.events)
  fill("known-keys", state.seen.keys)
}

/** Every channel key of the token as a chip that explains it. */
function renderChannelKeys(claims) {
  const keys = Object.keys(claims?.channels ?? {})
  $("channel-keys").replaceChildren(
    ...keys.map((key) =>
      el("button", {
        type: "button",
        class: "chip",
        "data-key": key,
        title: key.includes("*") || key.startsWith("#") ? "a pattern: type a channel name it should match" : "explain this channel",
        text: key,
        onclick: () => {
          $("explain-channel").value = key
          $("explain-event").value = ""
          $("explain-key").value = ""
          runExplain()
        },
      }),
    ),
  )
}

async function askStage(body) {
  const response = await fetch(`${httpBase}/console/explain`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: state.token, ...body }),
  })
  const reply = await response.json().catch(() => null)
  if (!response.ok) {
    throw new Error(reply?.error ? `${reply.error.code}: ${reply.error.message}` : `HTTP ${response.status}`)
  }
  return reply
}

function meaningOf(code) {
  return state.config.errorCodes?.[code] ?? ""
}

function renderVerdict(tokenResult) {
  const node = $("verdict")
  node.replaceChildren()
  node.dataset.code = tokenResult.code ?? ""
  node.dataset.ok = String(tokenResult.ok)
  if (tokenResult.ok) {
    node.className = "verdict ok"
    node.append(
      el("strong", { text: "✔ The stage accepts this token" }),
      ` — it opens a connection (scopes: ${tokenResult.scopes.join(", ")}${tokenResult.singleUse ? "; single-use, spent by its first connection" : ""}).`,
    )
  } else {
    node.className = "verdict bad"
    node.append(
      el("strong", { text: "✘ Refused: " }),
      el("span", { class: "code", "data-testid": "verdict-code", text: tokenResult.code }),
      ` (HTTP ${tokenResult.status}) — ${tokenResult.meaning || meaningOf(tokenResult.code)}`,
      tokenResult.message ? el("div", { class: "small", text: `The stage says: ${tokenResult.message}` }) : null,
    )
  }
}

async function verifyToken() {
  const token = state.token
  if (!token) return null
  try {
    const reply = await askStage({})
    if (token !== state.token) return null
    renderVerdict(reply.token)
    return reply.token
  } catch (err) {
    $("verdict").className = "verdict bad"
    $("verdict").textContent = `The stage could not be asked (${err.message}).`
    return null
  }
}

// ------------------------------------------------------------------ explain

const fmtValue = (value) => {
  if (value === true) return el("span", { class: "yes", text: "yes" })
  if (value === false) return el("span", { class: "no", text: "no" })
  if (value == null) return el("span", { class: "muted", text: "—" })
  return el("span", { text: typeof value === "string" ? value : JSON.stringify(value) })
}

const kindTag = (kind) => el("span", { class: `kind ${kind}`, text: kind })

function directiveRows(directives) {
  return directives.map((d) =>
    el(
      "tr",
      { "data-directive": d.name, "data-value": JSON.stringify(d.value) },
      el("td", { text: d.name }),
      el("td", { class: "value" }, fmtValue(d.value)),
      el(
        "td",
        { class: "why" },
        el("div", { text: d.why }),
        d.sources?.length
          ? el(
              "div",
              { class: "small" },
              d.sources.map((s) =>
                el(
                  "div",
                  { "data-outcome": s.outcome },
                  kindTag(s.kind),
                  ` ${s.key} = ${JSON.stringify(s.value)} `,
                  s.channelKey && s.key !== s.channelKey ? `(in channel key ${s.channelKey}) ` : "",
                  el("em", { text: s.outcome }),
                ),
              ),
            )
          : null,
      ),
    ),
  )
}

function renderExplanation(reply) {
  const out = $("explanation")
  out.replaceChildren()
  const c = reply.channel
  if (!c) return
  const box = el("div", { class: "explain", "data-channel": c.name })
  if (c.invalid) {
    box.append(el("p", { class: "error small", text: `"${c.name}" is not a channel name: ${c.invalid}` }))
  }
  if (c.channel !== c.name) {
    box.append(el("p", { class: "small", text: `"${c.name}" is this token's alias of channel "${c.channel}".` }))
  } else if (c.alias) {
    box.append(el("p", { class: "small", text: `This token gives "${c.channel}" the alias "${c.alias}".` }))
  }
  box.append(
    el("h3", { text: "Matching keys" }),
    c.matched.length
      ? el(
          "div",
          { class: "chips", "data-testid": "matched-keys" },
          c.matched.map((k) => el("span", { class: "chip", "data-kind": k.kind }, kindTag(k.kind), " ", k.key)),
        )
      : el("p", {
          class: "small",
          "data-testid": "matched-keys",
          text: "No key of this token matches: every directive has its default (no permissions).",
        }),
  )
  if (c.unmatched?.length) {
    box.append(el("p", { class: "small muted", text: `Not matching: ${c.unmatched.map((k) => `${k.key} (${k.kind})`).join(", ")}` }))
  }
  box.append(el("h3", { text: `Channel ${c.channel}` }), el("table", { "data-part": "channel" }, directiveRows(c.directives)))
  for (const [part, title] of [
    ["event", "Event"],
    ["storageKey", "Storage key"],
  ]) {
    const section = c[part]
    if (!section) continue
    box.append(el("h3", { text: `${title} ${section.name}` }))
    if (section.invalid) box.append(el("p", { class: "error small", text: section.invalid }))
    box.append(el("table", { "data-part": part }, directiveRows(section.directives)))
  }
  const chipsFor = (keys, field) =>
    keys?.length
      ? el(
          "div",
          { class: "chips" },
          keys.map((key) =>
            el("button", {
              type: "button",
              class: "chip",
              text: key,
              onclick: () => {
                $(field).value = key
                runExplain()
              },
            }),
          ),
        )
      : null
  if (c.events?.length) box.append(el("h3", { text: "Event keys for this channel" }), chipsFor(c.events, "explain-event"))
  if (c.storageKeys?.length) {
    box.append(el("h3", { text: "Storage keys for this channel" }), chipsFor(c.storageKeys, "explain-key"))
  }
  out.append(box)
}

let explained = 0

async function runExplain() {
  const asked = ++explained
  const channel = $("explain-channel").value.trim()
  if (!state.token) {
    $("explanation").replaceChildren(el("p", { class: "muted small", text: "Paste or mint a token first." }))
    return
  }
  if (!channel) return
  const body = { channel }
  const event = $("explain-event").value.trim()
  const key = $("explain-key").value.trim()
  if (event) body.event = event
  if (key) body.key = key
  try {
    const reply = await askStage(body)
    if (asked !== explained) return // a newer question is on its way
    renderVerdict(reply.token)
    if (!reply.channel) {
      $("explanation").replaceChildren(
        el("p", { class: "muted small", text: "The stage explains permissions of tokens it verifies; this one is refused (above)." }),
      )
      return
    }
    renderExplanation(reply)
  } catch (err) {
    $("explanation").replaceChildren(el("p", { class: "error small", text: err.message }))
  }
}

// ------------------------------------------------------------------ logs

function entryMatches(entry, text, extra) {
  if (!extra(entry)) return false
  if (!text) return true
  return entry.search.includes(text)
}

function frameFilter() {
  const text = $("frame-filter").value.trim().toLowerCase()
  const dir = $("frame-direction").value
  return (entry) => entryMatches(entry, text, (e) => dir === "all" || e.dir === dir)
}

function applyFrameFilter() {
  const keep = frameFilter()
  let shown = 0
  for (const entry of state.frames) {
    entry.node.hidden = !keep(entry)
    if (!entry.node.hidden) shown++
  }
  $("frames").dataset.shown = String(shown)
}

function renderBody(node, entry, prettyOn) {
  node.innerHTML = highlight(entry.parsed !== undefined ? (prettyOn ? pretty(entry.parsed) : JSON.stringify(entry.parsed)) : entry.raw)
}

function clock(date) {
  return date.toTimeString().slice(0, 8) + "." + String(date.getMilliseconds()).padStart(3, "0")
}

function appendTo(list, entries, entry) {
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60
  entries.push(entry)
  list.append(entry.node)
  while (entries.length > MAX_ENTRIES) entries.shift().node.remove()
  if (nearBottom) list.scrollTop = list.scrollHeight
}

/** One frame (dir "in" / "out") or a note of the console's own (dir "note"). */
function logFrame(dir, raw, { why, explainable } = {}) {
  let parsed
  if (dir !== "note") {
    try {
      parsed = JSON.parse(raw)
    } catch {
      parsed = undefined
    }
  }
  const event = parsed && typeof parsed === "object" ? parsed.event : undefined
  const channel = parsed && typeof parsed === "object" ? parsed.channel : undefined
  const isError = event === "hotsock.error" || (dir === "note" && why)
  const node = el(
    "li",
    {
      "data-dir": dir,
      "data-event": event ?? "",
      "data-channel": typeof channel === "string" ? channel : "",
      "data-raw": raw,
      class: isError ? "is-error" : null,
    },
    el(
      "div",
      { class: "head" },
      el("span", { class: "dir", text: dir === "in" ? "←" : dir === "out" ? "→" : "•" }),
      el("time", { text: clock(new Date()) }),
      event ? el("span", { class: "ev", text: event }) : null,
      typeof channel === "string" ? el("span", { class: "ch", text: channel }) : null,
      dir === "note" ? el("span", { class: "note-text", text: raw }) : null,
    ),
  )
  const entry = { dir, raw, parsed, node, search: `${dir} ${raw}`.toLowerCase() }
  if (dir !== "note") {
    const body = el("pre", { class: "json" })
    renderBody(body, entry, $("frame-pretty").checked)
    entry.body = body
    node.append(body)
  }
  if (event === "hotsock.error") {
    const code = parsed.error?.code
    const meaning = meaningOf(code)
    node.append(
      el("div", { class: "why", "data-testid": "frame-why" }, el("span", { class: "code", text: code }), meaning ? ` — ${meaning}` : ""),
    )
    if (typeof channel === "string" && explainable !== false) {
      const sent = state.lastSent.get(channel)
      node.append(
        el("button", {
          type: "button",
          class: "chip",
          text: "explain the permissions",
          onclick: () => {
            $("explain-channel").value = channel
            $("explain-event").value = sent && !String(sent.event ?? "").startsWith("hotsock.") ? sent.event ?? "" : ""
            $("explain-key").value = sent?.key ?? ""
            showView("token")
            runExplain()
          },
        }),
      )
    }
  } else if (why) {
    node.append(el("div", { class: "why", "data-testid": "frame-why", html: why }))
  }
  if (event) state.seen.events.add(event)
  if (typeof channel === "string" && channel) state.seen.channels.add(channel)
  node.hidden = !frameFilter()(entry)
  appendTo($("frames"), state.frames, entry)
  $("frame-count").textContent = String(state.frames.filter((e) => e.dir !== "note").length)
  if (dir === "in" && typeof channel === "string") channelActivity(channel)
  return entry
}

const note = (text, options) => logFrame("note", text, options)

// ------------------------------------------------------------------ connection

function setConn(status, label) {
  document.body.dataset.conn = status
  $("conn-status").textContent = label ?? status
  const live = state.client && state.client.state !== "terminated"
  $("disconnect").disabled = !live
  $("reconnect").disabled = !state.token
  $("conn-id").textContent = state.client?.connectionId ?? ""
}

function stopClient() {
  const client = state.client
  state.client = null
  state.bindings.clear()
  if (client) client.terminate()
}

/** Opens a connection with the current token; re-binds `channels` once connected. */
function connect({ channels = [] } = {}) {
  stopClient()
  const token = state.token
  if (!token) {
    note("Paste a token first.")
    return
  }
  const client = new HotsockClient(state.wssUrl, {
    connectTokenFn: async () => state.token,
    httpBaseUrl: httpBase,
    lazyConnection: true,
    logLevel: "silent",
  })
  state.client = client
  state.attempt = { connected: false, explained: false }
  client.bind("@@message", (event) => client === state.client && logFrame("in", event.data))
  client.bind("@@messageSent", (raw) => {
    if (client !== state.client) return
    try {
      const frame = JSON.parse(raw)
      if (typeof frame.channel === "string") state.lastSent.set(frame.channel, frame)
    } catch {
      // not JSON: nothing to remember
    }
    logFrame("out", raw)
  })
  client.bind("@@connect", () => {
    if (client !== state.client) return
    state.attempt = { connected: true, explained: false }
    setConn("connected", "connected")
    if (state.channelView.name) scheduleChannelLoad()
  })
  client.bind("@@disconnect", (event) => onClosed(client, event))
  note(`connecting to ${state.wssUrl}`)
  setConn("connecting", "connecting…")
  for (const name of channels) subscribe(name)
}

async function onClosed(client, event) {
  if (client !== state.client) return
  const attempt = state.attempt
  const code = event?.code ?? "?"
  if (attempt?.connected) {
    note(`the socket closed (code ${code}${event?.reason ? `, ${event.reason}` : ""}); the client reconnects with the token and subscribes again`)
    state.attempt = { connected: false, explained: false }
    setConn("connecting", "reconnecting…")
    return
  }
  setConn("connecting", "reconnecting…")
  if (attempt?.explained) return
  attempt.explained = true
  note(`the handshake failed (WebSocket close ${code}); a browser cannot read the refusal, so the console asks the stage why`)
  const verdict = await verifyToken()
  if (client !== state.client) return
  if (verdict && !verdict.ok) {
    client.terminate()
    setConn("refused", `refused: ${verdict.code}`)
    note(`refused: ${verdict.code}`, {
      why: `<span class="code">${escapeHtml(verdict.code)}</span> (HTTP ${verdict.status}) — ${escapeHtml(verdict.meaning || meaningOf(verdict.code))}`,
    })
  } else if (verdict) {
    attempt.explained = false
    note("the stage accepts the token: the client keeps trying (is the WebSocket URL right?)")
  }
}

function requireClient() {
  if (state.client && state.client.state !== "terminated") return state.client
  note("Not connected: paste a token and connect first.")
  return null
}

function subscribe(name, subscribeToken) {
  const client = requireClient()
  if (!client || !name) return
  const channel = client.channels(name)
  channel.subscribeTokenFn = subscribeToken ? async () => subscribeToken : null
  state.channels.add(name)
  if (!state.bindings.has(name)) {
    state.bindings.set(name, channel.bind(/^/, () => {}))
  } else if (channel.state === "failed" || channel.state === "unsubscribed") {
    // A refused subscription is asked again by binding once more.
    state.bindings.get(name).unbind()
    state.bindings.set(name, channel.bind(/^/, () => {}))
  } else {
    note(`${name} is ${channel.state} already`)
  }
}

function unsubscribe(name) {
  const client = requireClient()
  if (!client || !name) return
  const channel = client.channels(name)
  const bound = state.bindings.get(name)
  state.bindings.delete(name)
  state.channels.delete(name)
  const wasAuto = channel.autoSubscribed
  if (bound) bound.unbind()
  // Subscribed without a binding of ours (the server's auto-subscription, a raw
  // frame): hotsock-js would not unsubscribe it, so the console asks itself.
  if (!bound || wasAuto) client.sendRawMessage({ event: "hotsock.unsubscribe", channel: name })
}

function disconnect() {
  if (!state.client) return
  const remembered = [...state.channels]
  stopClient()
  state.channels = new Set(remembered)
  note("disconnected (the console closed the socket; Reconnect opens a new one and subscribes again)")
  setConn("idle", "disconnected")
}

function reconnect() {
  const channels = [...state.channels]
  connect({ channels })
}

// ------------------------------------------------------------------ actions

const ACTIONS = {
  subscribe: { fields: ["channel", "token"], token: "subscribe token (optional)" },
  unsubscribe: { fields: ["channel"] },
  send: { fields: ["channel", "event", "data"] },
  storageGet: { fields: ["channel", "key"] },
  storageSet: { fields: ["channel", "key", "data"] },
  react: { fields: ["channel", "messageId", "reaction", "reactAction"] },
  umdUpdate: { fields: ["token", "channel"], token: "umd token", channel: "channel (empty: the connection's umd)" },
  ping: { fields: [] },
  heartbeat: { fields: [] },
  raw: { fields: ["raw"] },
  drop: { fields: [] },
  disconnect: { fields: [] },
  reconnect: { fields: [] },
}

const field = (name) => document.querySelector(`[data-field="${name}"]`)

function showActionFields() {
  const action = ACTIONS[$("action").value]
  for (const node of document.querySelectorAll("[data-field]")) {
    node.hidden = !action.fields.includes(node.dataset.field)
  }
  field("token").placeholder = action.token ?? "token"
  field("channel").placeholder = action.channel ?? "channel"
}

/** `data` as typed: JSON when it parses, else the text itself; empty is absent. */
function parseData(text) {
  if (text.trim() === "") return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function runAction(action) {
  const value = (name) => field(name).value.trim()
  const channel = value("channel")
  switch (action) {
    case "subscribe":
      return subscribe(channel, value("token") || null)
    case "unsubscribe":
      return unsubscribe(channel)
    case "send": {
      const client = requireClient()
      if (!client) return
      const data = parseData(field("data").value)
      client.sendMessage(value("event"), { channel: channel || undefined, data })
      return
    }
    case "storageGet":
      return requireClient()?.sendRawMessage({ event: "hotsock.channelStorageGet", channel, key: value("key") })
    case "storageSet": {
      const data = parseData(field("data").value)
      return requireClient()?.setStorage(channel, value("key"), data === undefined ? null : data)
    }
    case "react":
      return requireClient()?.react(channel, value("messageId"), value("reaction"), field("reactAction").value)
    case "umdUpdate":
      return requireClient()?.umdUpdate(value("token"), channel ? { channel } : {})
    case "ping":
      return requireClient()?.sendRawMessage({ event: "hotsock.ping" })
    case "heartbeat":
      return requireClient()?.sendRawMessage({ event: "hotsock.heartbeat" })
    case "raw":
      return sendRaw(field("raw").value)
    case "drop": {
      const client = requireClient()
      // The client's own socket, closed as a network loss would: it reconnects.
      if (client?._ws) client._ws.close(4000, "dropped by the console")
      return
    }
    case "disconnect":
      return disconnect()
    case "reconnect":
      return reconnect()
    default:
      return undefined
  }
}

/** A raw frame as typed: JSON goes through the client, anything else straight to the socket. */
function sendRaw(text) {
  const client = requireClient()
  if (!client || !text.trim()) return
  try {
    JSON.parse(text)
  } catch {
    if (client.state !== "connected" || !client._ws) {
      note("Not connected yet: a frame that is not JSON is sent only on an open socket.")
      return
    }
    client._ws.send(text)
    logFrame("out", text)
    return
  }
  client.sendRawMessage(text)
}

// ------------------------------------------------------------------ channel view

function channelActivity(channel) {
  const view = state.channelView
  if (view.name && $("channel-live").checked && channel === view.name) scheduleChannelLoad()
}

function scheduleChannelLoad() {
  const view = state.channelView
  clearTimeout(view.timer)
  view.timer = setTimeout(loadChannel, 250)
}

async function adminGet(path) {
  const apiKey = $("api-key").value.trim()
  if (!apiKey) return { error: "no API key: the admin reads need one" }
  const response = await fetch(`${httpBase}${path}`, { headers: { authorization: `Bearer ${apiKey}` } })
  const reply = await response.json().catch(() => null)
  if (!response.ok) {
    const code = reply?.error?.code ?? `HTTP_${response.status}`
    return { error: `${code} — ${meaningOf(code) || reply?.error?.message || ""}` }
  }
  return { reply }
}

function section(testid, title, ...children) {
  return el("section", { "data-testid": testid }, el("h3", { text: title }), ...children)
}

const errorLine = (text) => el("p", { class: "error small", text })

function renderInfo(result) {
  if (result.error) return section("channel-info", "Subscriptions", errorLine(result.error))
  const info = result.reply
  const members = info.members
  return section(
    "channel-info",
    "Subscriptions",
    el("div", { class: "stat", "data-testid": "subscription-count", text: String(info.subscriptionsCount) }),
    el("p", { class: "muted small", text: `GET /channels/${info.name}` }),
    members
      ? el(
          "div",
          { "data-testid": "members" },
          el("h3", { text: `Presence members (${members.length})` }),
          members.length
            ? el(
                "table",
                {},
                el("tr", {}, el("th", { text: "uid" }), el("th", { text: "umd" })),
                members.map((m) => el("tr", { "data-uid": m.uid }, el("td", { text: m.uid }), el("td", { text: JSON.stringify(m.umd) }))),
              )
            : el("p", { class: "muted small", text: "nobody here" }),
        )
      : null,
  )
}

function renderStorage(result) {
  if (result.error) return section("channel-storage", "Storage", errorLine(result.error))
  const items = result.reply.items ?? []
  return section(
    "channel-storage",
    `Storage (${items.length} ${items.length === 1 ? "entry" : "entries"})`,
    items.length
      ? el(
          "table",
          {},
          el("tr", {}, el("th", { text: "key" }), el("th", { text: "data" }), el("th", { text: "last writer" })),
          items.map((item) =>
            el(
              "tr",
              { "data-key": item.key },
              el("td", { text: item.key }),
              el("td", { class: "data", text: JSON.stringify(item.data) }),
              el("td", { text: item.meta?.uid ?? "(server)" }),
            ),
          ),
        )
      : el("p", { class: "muted small", text: "no entries" }),
  )
}

function renderMessages(result, channel) {
  if (result.error) return section("channel-messages", "Stored messages", errorLine(result.error), result.action ?? null)
  const messages = result.messages
  return section(
    "channel-messages",
    `Stored messages (${messages.length})`,
    messages.length
      ? el(
          "ol",
          { class: "log" },
          messages.map((m) => {
            const reactions = Object.entries(m.reactions ?? {})
            return el(
              "li",
              { class: "message", "data-id": m.id, "data-event": m.event },
              el(
                "div",
                { class: "head" },
                el("time", { text: new Date(ulidTime(m.id)).toISOString().replace("T", " ").slice(0, 23) }),
                el("span", { class: "ev", text: m.event }),
                el("span", { class: "ch", text: m.meta?.uid ? `by ${m.meta.uid}` : "server" }),
                el("code", { class: "ch", text: m.id }),
                el("button", {
                  type: "button",
                  class: "react-here",
                  text: "react…",
                  onclick: () => {
                    $("action").value = "react"
                    showActionFields()
                    field("channel").value = channel
                    field("messageId").value = m.id
                    showView("frames")
                    field("reaction").focus()
                  },
                }),
              ),
              el("pre", { class: "json", html: highlight(pretty(m.data)) }),
              reactions.length
                ? el(
                    "div",
                    { class: "reactions" },
                    reactions.map(([reaction, r]) =>
                      el("span", {
                        class: "reaction",
                        "data-reaction": reaction,
                        "data-count": r.count,
                        title: (r.items ?? []).map((i) => i.uid).join(", "),
                        text: `${reaction} ${r.count}${r.items?.length ? ` · ${r.items.map((i) => i.uid).join(", ")}` : ""}`,
                      }),
                    ),
                  )
                : null,
            )
          }),
        )
      : el("p", { class: "muted small", text: "none stored in this connection's history window" }),
  )
}

async function readHistory(channel) {
  const client = state.client
  if (!client || client.state !== "connected") return { error: "not connected: the history comes from this connection's listMessages" }
  if (client.channels(channel).state !== "subscribed") {
    return {
      error: "this connection is not subscribed: listMessages lists a channel's history to its subscribers",
      action: el("button", { type: "button", text: `Subscribe this connection to ${channel}`, onclick: () => subscribe(channel) }),
    }
  }
  try {
    return { messages: await client.listAllMessages(channel, { expandReactions: true }) }
  } catch (err) {
    const result = { error: `${err.code} — ${meaningOf(err.code) || err.message}` }
    if (err.code === "NOT_SUBSCRIBED") {
      result.action = el("button", {
        type: "button",
        text: `Subscribe this connection to ${channel}`,
        onclick: () => subscribe(channel),
      })
    }
    return result
  }
}

async function loadChannel() {
  const view = state.channelView
  const name = view.name
  if (!name) return
  if (view.loading) {
    view.again = true
    return
  }
  view.loading = true
  try {
    const path = `/channels/${encodeURIComponent(name)}`
    const [info, storage, history] = await Promise.all([adminGet(path), adminGet(`${path}/storage`), readHistory(name)])
    if (name !== view.name) return
    const body = $("channel-view")
    body.replaceChildren(
      el("p", { class: "muted small", text: `Channel ${name} · read ${new Date().toTimeString().slice(0, 8)}` }),
      renderInfo(info),
      renderStorage(storage),
      renderMessages(history, name),
    )
    body.dataset.loaded = name
    body.dataset.loads = String(Number(body.dataset.loads ?? 0) + 1)
  } finally {
    view.loading = false
    if (view.again) {
      view.again = false
      scheduleChannelLoad()
    }
  }
}

function openChannel(name) {
  const view = state.channelView
  view.name = name
  kept.set(SESSION.apiKey, $("api-key").value.trim())
  clearInterval(view.poll)
  view.poll = setInterval(() => {
    if ($("channel-live").checked && document.visibilityState === "visible") loadChannel()
  }, 5000)
  loadChannel()
}

// ------------------------------------------------------------------ backend events

function eventFilter() {
  const type = $("event-type").value
  const channel = $("event-channel").value.trim()
  return (entry) => (!type || entry.type === type) && (!channel || entry.channel === channel)
}

function applyEventFilter() {
  const keep = eventFilter()
  let shown = 0
  for (const entry of state.events) {
    entry.node.hidden = !keep(entry)
    if (!entry.node.hidden) shown++
  }
  $("events").dataset.shown = String(shown)
}

function addEventType(type) {
  const select = $("event-type")
  if ([...select.options].some((o) => o.value === type)) return
  select.append(el("option", { value: type, text: type }))
}

function logEvent(type, data) {
  if ($("events-pause").checked) return
  let body
  try {
    body = JSON.parse(data)
  } catch {
    body = data
  }
  const channel = body?.metadata?.channel ?? ""
  addEventType(type)
  const node = el(
    "li",
    { "data-dir": "in", "data-type": type, "data-channel": channel, "data-raw": data },
    el(
      "div",
      { class: "head" },
      el("time", { text: clock(new Date()) }),
      el("span", { class: "ev", text: type }),
      channel ? el("span", { class: "ch", text: channel }) : null,
    ),
    el("pre", { class: "json", html: highlight(typeof body === "string" ? body : pretty(body)) }),
  )
  const entry = { type, channel, node }
  node.hidden = !eventFilter()(entry)
  appendTo($("events"), state.events, entry)
  $("event-count").textContent = String(state.events.length)
  if (channel) channelActivity(channel)
}

/** GET dev/events (Server-Sent Events), read with fetch so every type arrives. */
async function streamEvents() {
  const status = $("events-status")
  for (;;) {
    try {
      const response = await fetch(`${httpBase}/dev/events`, { headers: { accept: "text/event-stream" } })
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`)
      status.textContent = "streaming"
      status.dataset.streaming = "true"
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ""
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value
        let end
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "")
          let type = "message"
          const data = []
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith("event:")) type = line.slice(6).trim()
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""))
          }
          if (data.length) logEvent(type, data.join("\n"))
        }
      }
    } catch {
      // the stage restarted or the network hiccupped: try again below
    }
    status.textContent = "reconnecting…"
    status.dataset.streaming = "false"
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}

// ------------------------------------------------------------------ dev tokens

async function mintAndConnect() {
  const error = $("mint-error")
  error.textContent = ""
  let claims
  try {
    claims = JSON.parse($("mint-claims").value)
  } catch (err) {
    error.textContent = `The claims are not JSON: ${err.message}`
    return
  }
  kept.set(SESSION.claims, $("mint-claims").value)
  const response = await fetch(`${httpBase}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(claims),
  })
  const reply = await response.json().catch(() => null)
  if (!response.ok || !reply?.token) {
    error.textContent = reply?.error ? `${reply.error.code}: ${reply.error.message}` : `HTTP ${response.status}`
    return
  }
  const exact = Object.keys(claims.channels ?? {}).filter((k) => !k.includes("*") && !k.startsWith("#"))
  useToken(reply.token, { channels: $("mint-subscribe").checked ? exact : [] })
  // Ready to publish: the send form names the first channel.
  if (exact.length) {
    $("action").value = "send"
    showActionFields()
    field("channel").value = exact[0]
    if (!field("event").value) field("event").value = "hello"
    if (!field("data").value) field("data").value = '{"text":"hi from the console"}'
    if (!$("channel-name").value) $("channel-name").value = exact[0]
  }
  document.querySelector(".side").scrollTop = 0
  showView("frames")
}

// ------------------------------------------------------------------ wiring

function showView(view) {
  document.body.dataset.view = view
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.tab === view))
  }
}

/** Takes a token (pasted or minted): keeps it in the tab, inspects and connects. */
function useToken(token, { channels = [] } = {}) {
  token = token.trim()
  state.token = token
  $("token-input").value = token
  kept.set(SESSION.token, token)
  inspect(token)
  if (!token) {
    stopClient()
    setConn("idle", "not connected")
    return
  }
  // The verdict, with the token's first exact channel explained (or the one asked before).
  const first = Object.keys(state.claims?.channels ?? {}).find((k) => !k.includes("*") && !k.startsWith("#"))
  if (first && !$("explain-channel").value.trim()) $("explain-channel").value = first
  if ($("explain-channel").value.trim()) runExplain()
  else verifyToken()
  state.channels = new Set()
  connect({ channels })
}

function describeSecrets() {
  const ws = (() => {
    try {
      return new URL(state.wssUrl).host
    } catch {
      return state.wssUrl
    }
  })()
  $("secret-note").textContent =
    "Kept in this tab's sessionStorage (gone when the tab closes), never in a URL of this page or in " +
    `localStorage; sent only to this stage: ${ws} (the WebSocket URL's token query, as the protocol ` +
    `requires) and ${httpBase}/console/explain. The page has no privileges of its own.`
  $("api-key-note").textContent =
    `The API key is kept like the token (sessionStorage) and sent only to ${httpBase}/channels/… ` +
    "as an Authorization header."
}

function wire() {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.addEventListener("click", () => showView(tab.dataset.tab))
  }
  const tokenInput = $("token-input")
  tokenInput.addEventListener("paste", () => setTimeout(() => useToken(tokenInput.value), 0))
  $("connect").addEventListener("click", () => useToken(tokenInput.value))
  $("forget-token").addEventListener("click", () => useToken(""))
  $("disconnect").addEventListener("click", disconnect)
  $("reconnect").addEventListener("click", reconnect)
  $("wss-url").addEventListener("change", () => {
    state.wssUrl = $("wss-url").value.trim()
    describeSecrets()
  })

  $("explain-form").addEventListener("submit", (e) => {
    e.preventDefault()
    runExplain()
  })

  $("frame-filter").addEventListener("input", applyFrameFilter)
  $("frame-direction").addEventListener("change", applyFrameFilter)
  $("frame-pretty").addEventListener("change", () => {
    for (const entry of state.frames) if (entry.body) renderBody(entry.body, entry, $("frame-pretty").checked)
  })
  $("frame-clear").addEventListener("click", () => {
    for (const entry of state.frames) entry.node.remove()
    state.frames = []
    $("frame-count").textContent = "0"
  })

  $("action").addEventListener("change", showActionFields)
  const form = $("action-form")
  form.addEventListener("submit", (e) => {
    e.preventDefault()
    runAction($("action").value)
  })
  for (const area of form.querySelectorAll("textarea")) {
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault()
        form.requestSubmit()
      }
    })
  }
  showActionFields()

  $("channel-form").addEventListener("submit", (e) => {
    e.preventDefault()
    openChannel($("channel-name").value.trim())
  })
  $("forget-key").addEventListener("click", () => {
    $("api-key").value = ""
    kept.set(SESSION.apiKey, "")
  })

  $("event-type").addEventListener("change", applyEventFilter)
  $("event-channel").addEventListener("input", applyEventFilter)
  $("events-clear").addEventListener("click", () => {
    for (const entry of state.events) entry.node.remove()
    state.events = []
    $("event-count").textContent = "0"
  })
  for (const type of EVENT_TYPES) addEventType(type)

  $("mint-connect").addEventListener("click", () => mintAndConnect())
  setInterval(renderExpiry, 1000)
}

/** The stage's own WebSocket URL and the meanings of its error codes. */
async function loadConfig() {
  try {
    const response = await fetch(`${httpBase}/console/config`)
    if (response.ok) state.config = await response.json()
  } catch {
    // an older stage: derive what we can
  }
}

function defaultWssUrl() {
  const fromStage = state.config.webSocketUrl
  if (fromStage) {
    const url = new URL(fromStage)
    // A stage listening on every interface names it 0.0.0.0: use the host the page came from.
    if (url.hostname === "0.0.0.0" || url.hostname === "[::]") url.hostname = location.hostname
    return url.toString().replace(/\/$/, "")
  }
  const base = new URL(httpBase)
  return `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}/v1`
}

/** Whether this is the local stage: its dev token endpoint answers. */
async function probeLocalStage() {
  try {
    const response = await fetch(`${httpBase}/dev/token`, { method: "POST", body: "{}" })
    return response.ok
  } catch {
    return false
  }
}

async function start() {
  wire()
  showView(window.matchMedia("(min-width: 900px)").matches ? "frames" : "token")
  await loadConfig()
  state.wssUrl = query.get("wssUrl") || defaultWssUrl()
  $("wss-url").value = state.wssUrl
  describeSecrets()
  const local = await probeLocalStage()
  state.stage = local ? "local" : "deployed"
  document.body.dataset.stage = state.stage
  $("stage-kind").textContent = local ? `local stage · ${httpBase}` : `stack · ${httpBase}`
  $("mint").hidden = !local
  if (local) {
    $("mint-claims").value = kept.get(SESSION.claims) || pretty(DEFAULT_CLAIMS)
    $("events-note").textContent =
      "Every backend event of the local stage, live (GET /dev/events). Filter by type and channel."
    streamEvents()
  } else {
    $("events-status").textContent = "not on this stage"
    $("events-note").textContent =
      "A deployed stack tells its backend events to EventBridge and/or SNS (stack parameters " +
      "PublishEventsToEventBridgeParameter / PublishEventsToSNSParameter, outputs PubSubBusArn / PubSubTopicArn), not to " +
      "a browser. Subscribe a queue or a rule to watch them; the local stage streams them here."
  }
  $("api-key").value = kept.get(SESSION.apiKey)
  const token = kept.get(SESSION.token)
  if (token) useToken(token)
  else setConn("idle", "not connected")
  document.body.dataset.ready = "true"
}

start()
