// Real-time chat: Jim and Pam, each with their own connection.
// - `chat` messages ({text}) are stored, so history comes from listMessages.
// - `is-typing` is sent at most every 1.5 s while typing (not echoed); the
//   other side shows "Jim is typing…" until 2 s after the last one, or until
//   Jim's next chat message arrives.
// - Reactions (❤️ 👍 👎 😂) use hotsock.messageReaction; one active reaction
//   per user per message. Counts come from listMessages (expandReactions) and
//   then from hotsock.messageReactionAdded / Removed events.

import { HotsockClient, ulidTime } from "../lib/hotsock-lite.js"
import { HistorySync, mountProfile, setStatus, startDemo } from "../lib/demo-app.js"
import { stageWebSocketUrl } from "../lib/session.js"

const ENDPOINT = "/real-time-chat"
const STORAGE_KEY = "sockhop-example-chat-session"
export const REACTIONS = ["❤️", "👍", "👎", "😂"]
const TYPING_SEND_EVERY_MS = 1500
const TYPING_SHOW_FOR_MS = 2000
const PENDING_REACTION_MS = 5000

const USERS = {
  jim: { name: "Jim", color: "#e8590c" },
  pam: { name: "Pam", color: "#0ca678" },
}

function displayName(uid, umd) {
  if (umd && typeof umd.name === "string" && umd.name) return umd.name
  if (USERS[uid]) return USERS[uid].name
  return uid ? uid[0].toUpperCase() + uid.slice(1) : "Someone"
}

function hhmm(id) {
  const ms = ulidTime(id)
  if (!Number.isFinite(ms)) return ""
  const d = new Date(ms)
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`
}

/** Messages and their reactions, built from history and events. */
class ChatState {
  constructor() {
    this.messages = new Map() // id → {id, uid, name, text, reactions: Map<R, Set<uid>>}
  }

  addMessage(message) {
    if (!message.id || this.messages.has(message.id)) return null
    const uid = message.meta?.uid ?? null
    const entry = {
      id: message.id,
      uid,
      name: displayName(uid, message.meta?.umd),
      text: typeof message.data?.text === "string" ? message.data.text : "",
      reactions: new Map(),
    }
    // From listMessages: {R: {count, items?: [{uid, umd?}]}}.
    for (const [reaction, info] of Object.entries(message.reactions ?? {})) {
      const uids = new Set((info?.items ?? []).map((item) => item.uid))
      // Without expanded items only the count is known: keep placeholders.
      for (let i = uids.size; i < (info?.count ?? 0); i++) uids.add(`?${i}`)
      if (uids.size) entry.reactions.set(reaction, uids)
    }
    this.messages.set(entry.id, entry)
    return entry
  }

  /** Applies hotsock.messageReactionAdded/Removed; the message or null. */
  applyReaction(message) {
    const { messageId, reaction } = message.data ?? {}
    const uid = message.meta?.uid
    const entry = this.messages.get(messageId)
    if (!entry || !reaction || !uid) return null
    let uids = entry.reactions.get(reaction)
    if (message.event === "hotsock.messageReactionAdded") {
      if (!uids) entry.reactions.set(reaction, (uids = new Set()))
      uids.add(uid)
    } else {
      uids?.delete(uid)
      if (uids && uids.size === 0) entry.reactions.delete(reaction)
    }
    return entry
  }
}

class ChatWindow {
  constructor(root, { user, channel, tokenFn }) {
    this.root = root
    this.user = user
    this.channelName = channel
    this.state = new ChatState()
    this.elements = new Map() // message id → <li>
    this.pending = new Map() // message id → {reaction|null, timer}: my intended reaction
    this.typers = new Map() // uid → {name, timer}
    this.lastTypingSent = 0

    mountProfile(root, "window-template", USERS[user])
    this.listEl = root.querySelector("[data-testid=messages]")
    this.typingEl = root.querySelector("[data-testid=typing-indicator]")
    this.errorEl = root.querySelector("[data-testid=error]")
    this.input = root.querySelector("[data-testid=message-input]")
    root.querySelector("[data-testid=composer]").addEventListener("submit", (e) => {
      e.preventDefault()
      this.send()
    })
    this.input.addEventListener("input", () => this.typing())

    this.client = new HotsockClient(stageWebSocketUrl(), { connectTokenFn: tokenFn })
    this.client.bind("@@disconnect", () => this.setStatus("connecting", "reconnecting…"))
    this.client.bind("hotsock.error", (m) => this.onError(m))
    this.channel = this.client.channels(channel)
    this.history = new HistorySync(this.client, this.channel, {
      listOptions: { expandReactions: true },
      rebuild: (history) => this.rebuild(history),
      apply: (m) => this.apply(m, true),
      status: (state, text) => this.setStatus(state, text),
    })
    this.channel.bind("chat", (m) => this.history.live(m))
    this.channel.bind("hotsock.messageReactionAdded", (m) => this.history.live(m))
    this.channel.bind("hotsock.messageReactionRemoved", (m) => this.history.live(m))
    this.channel.bind("is-typing", (m) => this.onTyping(m))
  }

  setStatus(state, text) {
    setStatus(this.root, state, text)
  }

  onError(message) {
    const error = message.error ?? {}
    console.warn(`[${this.user}] hotsock.error`, error)
    // A refused reaction: forget what we hoped for and show the real state.
    for (const id of [...this.pending.keys()]) this.settlePending(id, true)
    this.errorEl.textContent = error.message || error.code || "Something went wrong"
    this.errorEl.hidden = false
    clearTimeout(this.errorTimer)
    this.errorTimer = setTimeout(() => (this.errorEl.hidden = true), 4000)
  }

  // ---- history & live events ---------------------------------------------

  apply(message, live) {
    if (message.event === "chat") {
      const entry = this.state.addMessage(message)
      if (!entry) return
      this.renderMessage(entry, live)
      const typer = this.typers.get(entry.uid)
      if (typer) this.stopTyping(entry.uid)
    } else {
      const entry = this.state.applyReaction(message)
      if (!entry) return
      if (message.meta?.uid === this.user) this.settlePending(entry.id)
      this.renderReactions(entry)
    }
  }

  /** Replaces what is shown with the channel's stored history (with reaction counts). */
  rebuild(history) {
    this.state = new ChatState()
    this.elements.clear()
    this.listEl.replaceChildren()
    for (const m of history) if (m.event === "chat") this.apply(m, false)
    this.scrollToBottom()
  }

  // ---- sending -----------------------------------------------------------

  send() {
    const text = this.input.value.trim()
    if (!text) return
    this.input.value = ""
    this.lastTypingSent = 0
    this.channel.sendMessage("chat", { data: { text } })
  }

  typing() {
    if (!this.input.value.trim()) return
    const now = Date.now()
    if (now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return
    this.lastTypingSent = now
    this.channel.sendMessage("is-typing", { data: {} })
  }

  onTyping(message) {
    const uid = message.meta?.uid
    if (!uid || uid === this.user) return
    const previous = this.typers.get(uid)
    if (previous) clearTimeout(previous.timer)
    this.typers.set(uid, {
      name: displayName(uid, message.meta?.umd),
      timer: setTimeout(() => this.stopTyping(uid), TYPING_SHOW_FOR_MS),
    })
    this.renderTyping()
  }

  stopTyping(uid) {
    const typer = this.typers.get(uid)
    if (!typer) return
    clearTimeout(typer.timer)
    this.typers.delete(uid)
    this.renderTyping()
  }

  // ---- reactions ---------------------------------------------------------

  /** The reactions this user has on `entry`, counting clicks not yet confirmed. */
  myReactions(entry) {
    const pending = this.pending.get(entry.id)
    if (pending) return new Set(pending.reaction ? [pending.reaction] : [])
    const mine = new Set()
    for (const [reaction, uids] of entry.reactions) if (uids.has(this.user)) mine.add(reaction)
    return mine
  }

  react(messageId, reaction) {
    const entry = this.state.messages.get(messageId)
    if (!entry) return
    const mine = this.myReactions(entry)
    const wanted = mine.has(reaction) ? null : reaction
    // One active reaction per message: remove the old one(s), then add.
    for (const old of mine) this.client.react(this.channelName, messageId, old, "remove")
    if (wanted) this.client.react(this.channelName, messageId, wanted, "add")
    const previous = this.pending.get(messageId)
    if (previous) clearTimeout(previous.timer)
    this.pending.set(messageId, {
      reaction: wanted,
      timer: setTimeout(() => this.settlePending(messageId, true), PENDING_REACTION_MS),
    })
    this.renderReactions(entry)
  }

  /** Drops the pending intention once the server state matches it (or when forced). */
  settlePending(messageId, force = false) {
    const pending = this.pending.get(messageId)
    if (!pending) return
    const entry = this.state.messages.get(messageId)
    if (!force && entry) {
      const confirmed = [...entry.reactions].filter(([, uids]) => uids.has(this.user)).map(([r]) => r)
      const expected = pending.reaction ? [pending.reaction] : []
      if (confirmed.length !== expected.length || confirmed[0] !== expected[0]) return
    }
    clearTimeout(pending.timer)
    this.pending.delete(messageId)
    if (force && entry) this.renderReactions(entry)
  }

  // ---- rendering ---------------------------------------------------------

  isAtBottom() {
    const el = this.listEl
    return el.scrollHeight - el.scrollTop - el.clientHeight < 60
  }

  scrollToBottom() {
    this.listEl.scrollTop = this.listEl.scrollHeight
  }

  renderMessage(entry, live) {
    const stick = !live || this.isAtBottom() || entry.uid === this.user
    const mine = entry.uid === this.user
    const li = document.createElement("li")
    li.className = `message ${mine ? "mine" : "theirs"}`
    li.dataset.testid = "message"
    li.dataset.messageId = entry.id
    li.dataset.side = mine ? "mine" : "theirs"
    li.dataset.sender = entry.uid ?? ""

    const bubble = document.createElement("div")
    bubble.className = "bubble"
    const meta = document.createElement("div")
    meta.className = "meta"
    const sender = document.createElement("span")
    sender.className = "sender"
    sender.dataset.testid = "message-sender"
    sender.textContent = mine ? "You" : entry.name
    const time = document.createElement("time")
    time.dataset.testid = "message-time"
    time.textContent = hhmm(entry.id)
    const ms = ulidTime(entry.id)
    if (Number.isFinite(ms)) {
      time.dateTime = new Date(ms).toISOString()
      time.title = new Date(ms).toLocaleString()
    }
    meta.append(sender, time)
    const text = document.createElement("div")
    text.className = "text"
    text.dataset.testid = "message-text"
    text.textContent = entry.text
    bubble.append(meta, text)

    const bar = document.createElement("div")
    bar.className = "reactions"
    bar.dataset.testid = "reactions"
    for (const reaction of REACTIONS) {
      const button = document.createElement("button")
      button.type = "button"
      button.className = "reaction"
      button.dataset.testid = "reaction"
      button.dataset.reaction = reaction
      const emoji = document.createElement("span")
      emoji.className = "emoji"
      emoji.textContent = reaction
      const count = document.createElement("span")
      count.className = "count"
      count.dataset.testid = "reaction-count"
      button.append(emoji, count)
      button.addEventListener("click", () => this.react(entry.id, reaction))
      bar.append(button)
    }
    li.append(bubble, bar)

    // Keep id order even if something arrives late.
    let before = null
    const last = this.listEl.lastElementChild
    if (last && last.dataset.messageId > entry.id) {
      for (const [id, el] of this.elements) {
        if (id > entry.id && (!before || id < before.dataset.messageId)) before = el
      }
    }
    this.listEl.insertBefore(li, before)
    this.elements.set(entry.id, li)
    this.renderReactions(entry)
    if (stick) this.scrollToBottom()
  }

  renderReactions(entry) {
    const li = this.elements.get(entry.id)
    if (!li) return
    const mine = this.myReactions(entry)
    for (const button of li.querySelectorAll("[data-testid=reaction]")) {
      const reaction = button.dataset.reaction
      const n = entry.reactions.get(reaction)?.size ?? 0
      const active = mine.has(reaction)
      button.dataset.count = String(n)
      button.dataset.active = String(active)
      button.setAttribute("aria-pressed", String(active))
      button.title = active ? `Remove your ${reaction}` : `React with ${reaction}`
      button.querySelector(".count").textContent = n > 0 ? String(n) : ""
    }
  }

  renderTyping() {
    const names = [...this.typers.values()].map((t) => t.name)
    this.typingEl.hidden = names.length === 0
    this.typingEl.textContent =
      names.length === 0
        ? ""
        : names.length === 1
          ? `${names[0]} is typing…`
          : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`
  }
}

window.chat = await startDemo({
  endpoint: ENDPOINT,
  storageKey: STORAGE_KEY,
  title: "Chat",
  failure: "Could not start a chat session",
  users: Object.keys(USERS),
  rootSuffix: "window",
  Panel: ChatWindow,
})
