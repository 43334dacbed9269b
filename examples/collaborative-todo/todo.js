// Collaborative to-do: two users (Alice and Bob), each with their own
// connection. Every change is a published event (add-item, toggle-item,
// delete-item) with echo on, and each panel's list is derived only from the
// events it receives: first the channel's stored history (replayed in id
// order), then live events, deduplicated by message id.

import { HotsockClient } from "../lib/hotsock-lite.js"
import { HistorySync, mountProfile, setStatus, startDemo } from "../lib/demo-app.js"
import { randomId, stageWebSocketUrl } from "../lib/session.js"

const ENDPOINT = "/collaborative-todo"
const STORAGE_KEY = "sockhop-example-todo-session"
const EVENTS = ["add-item", "toggle-item", "delete-item"]

const USERS = {
  alice: { name: "Alice", color: "#7048e8" },
  bob: { name: "Bob", color: "#1098ad" },
}

/** The list state, built from events alone. */
class TodoState {
  constructor() {
    this.items = new Map() // item id → {id, text, done, addedBy, addedAt}
    this.seen = new Set() // message ids already applied
  }

  /** Applies one message; false when it was already applied. */
  apply(message) {
    if (!message.id || this.seen.has(message.id)) return false
    this.seen.add(message.id)
    const data = message.data ?? {}
    const id = typeof data.id === "string" ? data.id : null
    if (!id) return true
    switch (message.event) {
      case "add-item":
        if (!this.items.has(id) && typeof data.text === "string") {
          this.items.set(id, {
            id,
            text: data.text,
            done: false,
            addedBy: message.meta?.umd?.name ?? message.meta?.uid ?? "someone",
            order: message.id,
          })
        }
        break
      case "toggle-item": {
        const item = this.items.get(id)
        if (item) item.done = Boolean(data.done)
        break
      }
      case "delete-item":
        this.items.delete(id)
        break
      default:
        break
    }
    return true
  }

  list() {
    return [...this.items.values()].sort((a, b) => (a.order < b.order ? -1 : 1))
  }
}

class TodoPanel {
  constructor(root, { user, channel, tokenFn }) {
    this.root = root
    this.user = user
    this.state = new TodoState()

    mountProfile(root, "panel-template", USERS[user])
    this.listEl = root.querySelector("[data-testid=todo-list]")
    this.emptyEl = root.querySelector("[data-testid=empty]")
    this.summaryEl = root.querySelector("[data-testid=summary]")
    this.input = root.querySelector("[data-testid=new-item-input]")
    root.querySelector("[data-testid=add-form]").addEventListener("submit", (e) => {
      e.preventDefault()
      this.add()
    })

    this.client = new HotsockClient(stageWebSocketUrl(), { connectTokenFn: tokenFn })
    this.client.bind("@@disconnect", () => this.setStatus("connecting", "reconnecting…"))
    this.client.bind("hotsock.error", (m) => {
      console.warn(`[${user}]`, m.error)
      if (m.error?.code === "SUBSCRIBE_PERMISSION_DENIED") this.setStatus("error", "no access")
    })
    this.channel = this.client.channels(channel)
    // Every (re)subscription rebuilds the list from the stored history, so
    // nothing published while disconnected is missed.
    this.history = new HistorySync(this.client, this.channel, {
      rebuild: (history) => {
        this.state = new TodoState()
        for (const m of history) if (EVENTS.includes(m.event)) this.state.apply(m)
        this.render()
      },
      apply: (m) => this.state.apply(m) && this.render(),
      status: (state, text) => this.setStatus(state, text),
    })
    for (const event of EVENTS) this.channel.bind(event, (m) => this.history.live(m))
    this.render()
  }

  setStatus(state, text) {
    setStatus(this.root, state, text)
  }

  add() {
    const text = this.input.value.trim()
    if (!text) return
    this.input.value = ""
    this.channel.sendMessage("add-item", { data: { id: randomId("t-"), text } })
  }

  toggle(id, done) {
    this.channel.sendMessage("toggle-item", { data: { id, done } })
  }

  remove(id) {
    this.channel.sendMessage("delete-item", { data: { id } })
  }

  render() {
    const items = this.state.list()
    const rows = items.map((item) => {
      const li = document.createElement("li")
      li.className = "todo-item"
      li.dataset.testid = "todo-item"
      li.dataset.itemId = item.id
      li.dataset.done = String(item.done)

      const label = document.createElement("label")
      const box = document.createElement("input")
      box.type = "checkbox"
      box.dataset.testid = "toggle"
      box.checked = item.done
      // The checkbox shows what the events say: a click only publishes, and
      // the box changes when the echoed toggle-item arrives.
      box.addEventListener("click", (e) => {
        e.preventDefault()
        this.toggle(item.id, !item.done)
      })
      const text = document.createElement("span")
      text.className = "item-text"
      text.dataset.testid = "item-text"
      text.textContent = item.text
      label.append(box, text)

      const by = document.createElement("span")
      by.className = "added-by"
      by.dataset.testid = "added-by"
      by.textContent = item.addedBy

      const del = document.createElement("button")
      del.type = "button"
      del.className = "delete"
      del.dataset.testid = "delete"
      del.title = "Delete"
      del.setAttribute("aria-label", `Delete ${item.text}`)
      del.textContent = "✕"
      del.addEventListener("click", () => this.remove(item.id))

      li.append(label, by, del)
      return li
    })
    this.listEl.replaceChildren(...rows)
    this.emptyEl.hidden = items.length > 0
    const done = items.filter((i) => i.done).length
    this.summaryEl.textContent = items.length
      ? `${items.length} item${items.length === 1 ? "" : "s"} · ${done} done`
      : ""
    this.root.dataset.itemCount = String(items.length)
  }
}

window.todo = await startDemo({
  endpoint: ENDPOINT,
  storageKey: STORAGE_KEY,
  title: "To-do",
  failure: "Could not start a to-do session",
  users: Object.keys(USERS),
  rootSuffix: "panel",
  Panel: TodoPanel,
})
