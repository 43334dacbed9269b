// Game lobby: two players (Ada hosts, Lin joins), each with their own
// connection. The room settings live in the channel storage key `settings`
// (only the host may write it) and each player's seat in `player.<uid>`
// (each player writes only their own). Every panel observes all of them: its
// view is exactly the entries the server reports — on subscribe, one
// hotsock.channelStorageUpdated per existing entry; after that, one per change.
// Nothing is changed locally and no message history is read.
//
// The channel is a presence channel: who is here, and each player's name and
// colour, come from the members' user metadata (umd). Renaming asks the
// backend (the stage's /game-lobby/rename) for a umd token and sends it as
// hotsock.umdUpdate; every member, this one included, gets
// hotsock.memberUpdated with the new list.

import { HotsockClient } from "../lib/hotsock-lite.js"
import { mountProfile, setStatus, startDemo } from "../lib/demo-app.js"
import { sessionIdFromHash, stageWebSocketUrl } from "../lib/session.js"

const ENDPOINT = "/game-lobby"
const RENAME_ENDPOINT = "/game-lobby/rename"
const STORAGE_KEY = "sockhop-example-lobby-session"
const SETTINGS = "settings"
const SEAT_PREFIX = "player."
const DEFAULT_SETTINGS = { name: "Untitled room", maxPlayers: 4, mode: "casual" }

const USERS = {
  ada: { name: "Ada", color: "#e8590c", host: true },
  lin: { name: "Lin", color: "#0ca678", host: false },
}

/** The lobby as its storage entries say: settings and seats by uid. */
class LobbyState {
  constructor() {
    this.settings = null
    this.seats = new Map() // uid → {name, ready}
  }

  /** Applies one hotsock.channelStorageUpdated (data null: the entry is gone). */
  apply({ key, data }) {
    if (key === SETTINGS) {
      this.settings = data && typeof data === "object" ? data : null
    } else if (typeof key === "string" && key.startsWith(SEAT_PREFIX)) {
      const uid = key.slice(SEAT_PREFIX.length)
      if (data && typeof data === "object") {
        this.seats.set(uid, { name: String(data.name ?? uid), ready: data.ready === true })
      } else {
        this.seats.delete(uid)
      }
    }
  }

  get room() {
    return { ...DEFAULT_SETTINGS, ...(this.settings ?? {}) }
  }

  /** Seated players, in seat-key order. */
  players() {
    return [...this.seats.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([uid, seat]) => ({ uid, ...seat }))
  }

  everyoneReady() {
    const players = this.players()
    return players.length >= 2 && players.every((p) => p.ready)
  }
}

class LobbyPanel {
  constructor(root, { user, channel, tokenFn }) {
    this.root = root
    this.user = user
    this.profile = USERS[user]
    this.state = new LobbyState()
    /** The presence members: [{uid, umd: {name, color, host}}]. */
    this.members = []

    mountProfile(root, "panel-template", this.profile)
    const $ = (id) => root.querySelector(`[data-testid=${id}]`)
    this.el = {
      role: $("role"),
      roomName: $("room-name"),
      mode: $("room-mode"),
      count: $("player-count"),
      form: $("settings-form"),
      nameInput: $("room-name-input"),
      maxInput: $("max-players-input"),
      modeInput: $("mode-input"),
      players: $("players"),
      noPlayers: $("no-players"),
      join: $("join"),
      ready: $("ready"),
      leave: $("leave"),
      allReady: $("all-ready"),
      members: $("members"),
      renameForm: $("rename-form"),
      renameInput: $("rename-input"),
      renameError: $("rename-error"),
      avatar: root.querySelector(".avatar"),
      name: root.querySelector(".name"),
    }
    this.el.renameForm.addEventListener("submit", (e) => {
      e.preventDefault()
      this.rename(this.el.renameInput.value)
    })
    this.el.role.textContent = this.profile.host ? "host" : "player"
    this.el.form.hidden = !this.profile.host
    this.el.form.addEventListener("submit", (e) => {
      e.preventDefault()
      this.saveSettings()
    })
    this.el.join.addEventListener("click", () => this.sit({ ready: false }))
    this.el.ready.addEventListener("click", () => this.sit({ ready: !this.mySeat()?.ready }))
    this.el.leave.addEventListener("click", () => this.channel.setStorage(this.seatKey, null))

    this.client = new HotsockClient(stageWebSocketUrl(), { connectTokenFn: tokenFn })
    this.client.bind("@@disconnect", () => this.setStatus("connecting", "reconnecting…"))
    this.client.bind("hotsock.error", (m) => {
      console.warn(`[${user}]`, m.error)
      if (m.error?.code === "SUBSCRIBE_PERMISSION_DENIED") this.setStatus("error", "no access")
    })
    this.channel = this.client.channels(channel)
    // The catch-up frames follow hotsock.subscribed on the same socket, so a
    // (re)subscription starts from an empty lobby: entries cleared while this
    // panel was away do not linger. A resumed one (Sockhop's extension) keeps
    // its lobby: the updates it missed follow instead, clears included.
    this.channel.bind("hotsock.subscribed", (m) => {
      if (m.data?.recovered !== true) this.state = new LobbyState()
      this.members = this.channel.members
      this.render()
      this.setStatus("ready", "live")
    })
    for (const event of ["hotsock.memberAdded", "hotsock.memberRemoved", "hotsock.memberUpdated"]) {
      this.channel.bind(event, (m) => {
        this.members = m.data.members
        this.render()
      })
    }
    this.channel.bind("hotsock.channelStorageUpdated", (m) => {
      this.state.apply(m)
      this.render()
    })
    this.render()
  }

  get seatKey() {
    return `${SEAT_PREFIX}${this.user}`
  }

  mySeat() {
    return this.state.seats.get(this.user)
  }

  setStatus(state, text) {
    setStatus(this.root, state, text)
  }

  /** A player as the members' umd shows them (their seat's name if they left). */
  looks(uid, fallbackName) {
    const umd = this.members.find((m) => m.uid === uid)?.umd
    return {
      name: typeof umd?.name === "string" ? umd.name : (fallbackName ?? uid),
      color: typeof umd?.color === "string" ? umd.color : (USERS[uid]?.color ?? "#868e96"),
    }
  }

  /** Asks the backend for a umd token carrying the new name and sends it. */
  async rename(name) {
    this.el.renameError.textContent = ""
    try {
      const response = await fetch(RENAME_ENDPOINT, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sessionId: sessionIdFromHash(), uid: this.user, name }),
      })
      const reply = await response.json()
      if (!response.ok) throw new Error(reply?.error?.message ?? response.statusText)
      this.client.umdUpdate(reply.token, { channel: this.channel.name })
      this.el.renameInput.value = ""
    } catch (err) {
      this.el.renameError.textContent = `Rename failed: ${err.message}`
    }
  }

  sit({ ready }) {
    this.channel.setStorage(this.seatKey, { name: this.looks(this.user, this.profile.name).name, ready })
  }

  saveSettings() {
    this.channel.setStorage(SETTINGS, {
      name: this.el.nameInput.value.trim() || DEFAULT_SETTINGS.name,
      maxPlayers: Number(this.el.maxInput.value),
      mode: this.el.modeInput.value,
    })
  }

  render() {
    const room = this.state.room
    const players = this.state.players()
    this.el.roomName.textContent = room.name
    this.el.mode.textContent = room.mode
    this.el.count.textContent = `${players.length} / ${room.maxPlayers}`
    if (this.profile.host && document.activeElement !== this.el.nameInput) {
      this.el.nameInput.value = this.state.settings ? room.name : ""
      this.el.maxInput.value = String(room.maxPlayers)
      this.el.modeInput.value = room.mode
    }

    this.el.players.replaceChildren(
      ...players.map((p) => {
        const li = document.createElement("li")
        li.className = "player"
        li.dataset.testid = "player"
        li.dataset.uid = p.uid
        const looks = this.looks(p.uid, p.name)
        const name = document.createElement("span")
        name.className = "player-name"
        name.dataset.testid = "player-name"
        name.style.color = looks.color
        name.textContent = p.uid === this.user ? `${looks.name} (you)` : looks.name
        const badge = document.createElement("span")
        badge.className = "badge"
        badge.dataset.testid = "player-ready"
        badge.dataset.ready = String(p.ready)
        badge.textContent = p.ready ? "ready" : "not ready"
        li.append(name, badge)
        return li
      }),
    )
    this.el.noPlayers.hidden = players.length > 0

    this.el.members.replaceChildren(
      ...this.members.map(({ uid }) => {
        const looks = this.looks(uid)
        const li = document.createElement("li")
        li.className = "member"
        li.dataset.testid = "member"
        li.dataset.uid = uid
        const dot = document.createElement("span")
        dot.className = "dot"
        dot.style.background = looks.color
        const name = document.createElement("span")
        name.dataset.testid = "member-name"
        name.textContent = looks.name
        li.append(dot, name)
        return li
      }),
    )
    const me = this.looks(this.user, this.profile.name)
    this.el.name.textContent = me.name
    this.el.avatar.textContent = me.name[0] ?? "?"
    this.el.avatar.style.background = me.color

    const seat = this.mySeat()
    const full = players.length >= room.maxPlayers
    this.el.join.hidden = Boolean(seat)
    this.el.join.disabled = !seat && full
    this.el.ready.hidden = !seat
    this.el.ready.textContent = seat?.ready ? "Not ready" : "Ready"
    this.el.leave.hidden = !seat

    const go = this.state.everyoneReady()
    this.el.allReady.hidden = !go
    this.el.allReady.textContent = go ? `Everyone is ready: ${room.mode} game in ${room.name}!` : ""
    this.root.dataset.playerCount = String(players.length)
  }
}

window.lobby = await startDemo({
  endpoint: ENDPOINT,
  storageKey: STORAGE_KEY,
  title: "Lobby",
  failure: "Could not open a lobby",
  users: Object.keys(USERS),
  rootSuffix: "panel",
  Panel: LobbyPanel,
})
