// Helpers shared by the example apps: the stage URLs, the demo session id
// (URL hash → localStorage → a new one from the token endpoint) and the
// dev-only token endpoints of the local stage.

/** The stage's WebSocket URL, derived from where the page is served. */
export function stageWebSocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:"
  return `${scheme}//${location.host}/v1`
}

/** The session id named in the URL hash, if any. */
export function sessionIdFromHash() {
  try {
    return decodeURIComponent(location.hash.replace(/^#/, "")).trim()
  } catch {
    return ""
  }
}

/**
 * POSTs to a demo token endpoint (`/collaborative-todo`, `/real-time-chat`).
 * Resolves to its reply: `{<user>: {token}, ..., channel, sessionId}`.
 */
export async function fetchDemoTokens(endpoint, sessionId) {
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(sessionId ? { sessionId } : {}),
  })
  const text = await response.text()
  let reply
  try {
    reply = JSON.parse(text)
  } catch {
    reply = null
  }
  if (!response.ok || !reply) {
    const message = reply?.error?.message ?? (text || response.statusText)
    throw new Error(`${endpoint} answered ${response.status}: ${message}`)
  }
  return reply
}

/**
 * Picks the session (hash, else localStorage, else a new one), fetches its
 * tokens, remembers the session id and writes it into the URL hash so the
 * address can be shared. Changing the hash later switches sessions.
 */
export async function joinDemoSession(endpoint, storageKey) {
  let stored = null
  try {
    stored = localStorage.getItem(storageKey)
  } catch {
    // storage unavailable (privacy mode): fine, the hash still works
  }
  const wanted = sessionIdFromHash() || stored || undefined
  const tokens = await fetchDemoTokens(endpoint, wanted)
  const sessionId = tokens.sessionId
  try {
    localStorage.setItem(storageKey, sessionId)
  } catch {
    // ignore
  }
  if (sessionIdFromHash() !== sessionId) {
    history.replaceState(null, "", `#${encodeURIComponent(sessionId)}`)
  }
  window.addEventListener("hashchange", () => location.reload())
  return tokens
}

/** Starts a brand-new session: a fresh id from the endpoint, then reload. */
export async function startNewSession(endpoint, storageKey) {
  const tokens = await fetchDemoTokens(endpoint)
  try {
    localStorage.setItem(storageKey, tokens.sessionId)
  } catch {
    // ignore
  }
  location.hash = encodeURIComponent(tokens.sessionId)
}

/**
 * A connectTokenFn for one user of a demo session: the first call uses the
 * token already fetched, later calls (reconnects) fetch a fresh one.
 */
export function demoTokenFn(endpoint, sessionId, user, firstToken) {
  let first = firstToken
  return async () => {
    if (first) {
      const token = first
      first = null
      return token
    }
    const tokens = await fetchDemoTokens(endpoint, sessionId)
    return tokens[user].token
  }
}

/** A random id that works in insecure contexts too (no crypto.randomUUID there). */
export function randomId(prefix = "") {
  const bytes = new Uint8Array(10)
  crypto.getRandomValues(bytes)
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
}

/**
 * Shows a fatal error above the panels (for example, the token endpoint is
 * missing or the session id in the URL is invalid), with a way out.
 */
export function showFatal(message, { endpoint, storageKey } = {}) {
  const box = document.createElement("div")
  box.className = "fatal"
  box.dataset.testid = "fatal-error"
  box.append(message)
  if (endpoint) {
    const button = document.createElement("button")
    button.type = "button"
    button.className = "btn"
    button.textContent = "Start a new session"
    button.addEventListener("click", () => startNewSession(endpoint, storageKey))
    box.append(" ", button)
  }
  const topbar = document.querySelector(".topbar")
  if (topbar) topbar.after(box)
  else document.body.prepend(box)
  const panels = document.querySelector(".panels")
  if (panels) panels.style.display = "none"
}
