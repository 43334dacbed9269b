// Pieces both demo apps build their pages from: the session bar, each user's
// panel header and status badge, and HistorySync, which keeps a view consistent
// with a channel across reconnects.

import { demoTokenFn, joinDemoSession, showFatal, startNewSession } from "./session.js"

/** Orders messages by their ULID id, i.e. by publish time. */
export const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/** Fills the top bar: the session id, "Copy link" and "New session". */
export function mountSessionBar({ sessionId, title, endpoint, storageKey }) {
  document.querySelector("[data-testid=session-id]").textContent = sessionId
  document.title = `${title} ${sessionId} · Sockhop`
  document.querySelector("[data-testid=copy-link]").addEventListener("click", async (e) => {
    try {
      await navigator.clipboard.writeText(location.href)
      e.target.textContent = "Copied!"
    } catch {
      prompt("Share this link:", location.href)
    }
    setTimeout(() => (e.target.textContent = "Copy link"), 1500)
  })
  document
    .querySelector("[data-testid=new-session]")
    .addEventListener("click", () => startNewSession(endpoint, storageKey))
}

/**
 * Starts a demo page: joins the session of `endpoint` (joinDemoSession), fills
 * the session bar and makes one `new Panel(root, {user, channel, tokenFn})` per
 * user of `users`, on `[data-testid=<user>-<rootSuffix>]`. When no session can
 * be had it shows `failure` and the error, and marks the roots not ready.
 * Returns {user: panel}.
 */
export async function startDemo({ endpoint, storageKey, title, failure, users, rootSuffix, Panel }) {
  const roots = Object.fromEntries(
    users.map((user) => [user, document.querySelector(`[data-testid=${user}-${rootSuffix}]`)]),
  )
  let tokens
  try {
    tokens = await joinDemoSession(endpoint, storageKey)
  } catch (err) {
    showFatal(`${failure}: ${err.message}`, { endpoint, storageKey })
    for (const root of Object.values(roots)) root.dataset.ready = "false"
    return {}
  }
  const { sessionId, channel } = tokens
  mountSessionBar({ sessionId, title, endpoint, storageKey })
  const panels = {}
  for (const user of users) {
    panels[user] = new Panel(roots[user], {
      user,
      channel,
      tokenFn: demoTokenFn(endpoint, sessionId, user, tokens[user].token),
    })
  }
  return panels
}

/** Clones a user's panel from its <template> into root and fills in who it is. */
export function mountProfile(root, templateId, profile) {
  root.append(document.getElementById(templateId).content.cloneNode(true))
  const avatar = root.querySelector(".avatar")
  avatar.textContent = profile.name[0]
  avatar.style.background = profile.color
  root.querySelector(".name").textContent = profile.name
}

/** Sets a panel's status badge; `data-ready` on the panel is what tests wait for. */
export function setStatus(root, state, text) {
  const badge = root.querySelector("[data-testid=status]")
  badge.dataset.state = state
  badge.textContent = text
  root.dataset.ready = String(state === "ready")
}

/**
 * On every (re)subscription to `channel`, loads its stored history and hands it
 * to `rebuild`, holding live messages back meanwhile and then passing them to
 * `apply`: nothing published while the page was away is missed, and nothing
 * arriving during the load is lost. `apply` must ignore ids it has seen.
 */
export class HistorySync {
  constructor(client, channel, { listOptions = {}, rebuild, apply, status }) {
    this.client = client
    this.channelName = channel.name
    this.listOptions = listOptions
    this.rebuild = rebuild
    this.apply = apply
    this.status = status
    this.buffer = null // live messages held back while history loads
    this.syncing = false
    this.resyncWanted = false
    channel.bind("hotsock.subscribed", (message) => {
      // Resumed (Sockhop's extension): what was missed follows in order, as
      // live frames, so there is nothing to read back.
      if (message.data?.recovered === true) this.status("ready", "live")
      else this.sync()
    })
  }

  /** Route every live channel message through here. */
  live(message) {
    if (this.buffer) this.buffer.push(message)
    else this.apply(message)
  }

  async sync() {
    if (this.syncing) {
      this.resyncWanted = true
      return
    }
    this.syncing = true
    this.buffer = []
    this.status("connecting", "loading history…")
    try {
      const history = await this.client.listAllMessages(this.channelName, this.listOptions)
      this.rebuild(history.sort(byId))
      this.status("ready", "live")
    } catch (err) {
      console.error(`history of ${this.channelName}`, err)
      this.status("error", "history failed")
    }
    const held = this.buffer // in delivery order, which is id order per channel
    this.buffer = null
    for (const m of held) this.apply(m)
    this.syncing = false
    if (this.resyncWanted) {
      this.resyncWanted = false
      this.sync()
    }
  }
}
