// Unit tests of examples/lib/hotsock-lite.js against a fake WebSocket and a fake
// fetch (no browser, no stage): the wire frames it sends and how it reacts.
import assert from "node:assert/strict"
import { afterEach, beforeEach, test } from "node:test"
import { installResume } from "../lib/hotsock-js-resume.js"
import { autoSubscribeChannelsOf, HotsockClient, httpBaseFromWsUrl, ulidTime } from "../lib/hotsock-lite.js"

const flush = () => new Promise((resolve) => setImmediate(resolve))

class FakeSocket {
  static all = []
  constructor(url) {
    this.url = url
    this.sent = []
    this.closed = false
    FakeSocket.all.push(this)
    setTimeout(() => this.onopen?.({}), 0)
  }
  send(raw) {
    this.sent.push(JSON.parse(raw))
  }
  close(code = 1000) {
    if (this.closed) return
    this.closed = true
    setTimeout(() => this.onclose?.({ code }), 0)
  }
  // test side
  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }
  connected(id = "conn-1", uid = "jim") {
    this.receive({
      event: "hotsock.connected",
      data: { connectionId: id, connectionSecret: "s3cret", connectionExpiresAt: "2030-01-01T00:00:00Z" },
      meta: { uid, umd: null },
    })
  }
  dropped() {
    this.closed = true
    this.onclose?.({ code: 1006 })
  }
  framesOf(event) {
    return this.sent.filter((f) => f.event === event)
  }
}

function newClient(extra = {}) {
  let calls = 0
  const client = new HotsockClient("ws://127.0.0.1:4000/v1", {
    connectTokenFn: async () => `token-${++calls}`,
    WebSocket: FakeSocket,
    logLevel: "silent",
    // The wire as hotsock-js writes it, unless a test asks for resume.
    resume: false,
    ...extra,
  })
  return client
}

let realFetch
beforeEach(() => {
  FakeSocket.all = []
  realFetch = globalThis.fetch
})
afterEach(() => {
  globalThis.fetch = realFetch
})

test("ulidTime decodes the 48-bit timestamp of a ULID", () => {
  assert.equal(ulidTime("01ARZ3NDEKTSV4RRFFQ69G5FAV"), 1469922850259)
  assert.equal(ulidTime("01arz3ndektsv4rrffq69g5fav"), 1469922850259)
  assert.equal(ulidTime("0000000000ZZZZZZZZZZZZZZZZ"), 0)
  assert.ok(Number.isNaN(ulidTime("nope")))
  assert.ok(Number.isNaN(ulidTime("01ARZ3NDEU")), "U is not Crockford base32")
})

test("the HTTP API base URL comes from the WebSocket URL", () => {
  assert.equal(httpBaseFromWsUrl("ws://127.0.0.1:4000/v1"), "http://127.0.0.1:4000")
  assert.equal(httpBaseFromWsUrl("wss://abc.example/v1/?x=1"), "https://abc.example")
  assert.equal(httpBaseFromWsUrl("wss://abc.example/stage/v1"), "https://abc.example/stage")
})

test("connects with the token, subscribes bound channels, answers pings, dispatches", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  const seen = []
  client.bind("@@connect", () => seen.push("connect"))
  const binding = client.bind("chat", (m) => seen.push(`chat:${m.data.text}`), { channel: "room" })
  client.bind("chat", (m) => seen.push(`any:${m.channel}`))
  await flush()
  const ws = FakeSocket.all[0]
  assert.equal(new URL(ws.url).searchParams.get("token"), "token-1")
  assert.deepEqual(ws.sent, [], "nothing is sent before hotsock.connected")
  ws.connected()
  assert.equal(client.connectionId, "conn-1")
  assert.equal(client.connectionSecret, "s3cret")
  assert.equal(client.uid, "jim")
  // Subscriptions wait SUBSCRIBE_DELAY_MS for the server's auto-subscriptions.
  assert.deepEqual(ws.sent, [])
  t.mock.timers.tick(250)
  assert.deepEqual(ws.sent, [{ event: "hotsock.subscribe", channel: "room" }])
  ws.receive({ event: "hotsock.subscribed", channel: "room", data: {}, meta: { uid: "jim", umd: { n: 1 } } })
  assert.equal(binding.channel.state, "subscribed")
  assert.deepEqual(binding.channel.umd, { n: 1 })
  await binding.channel.subscribed()

  ws.receive({ id: "01", event: "chat", channel: "room", data: { text: "hi" }, meta: {} })
  ws.receive({ id: "02", event: "chat", channel: "other", data: { text: "no" }, meta: {} })
  assert.deepEqual(seen, ["connect", "chat:hi", "any:room", "any:other"])

  ws.receive({ event: "hotsock.ping" })
  assert.deepEqual(ws.sent.at(-1), { event: "hotsock.pong" })

  await client.channels("room").sendMessage("chat", { data: { text: "yo" } })
  assert.deepEqual(ws.sent.at(-1), { event: "chat", channel: "room", data: { text: "yo" } })
  await client.sendMessage("is-typing", { channel: "room" })
  assert.deepEqual(ws.sent.at(-1), { event: "is-typing", channel: "room" })

  binding.unbind()
  assert.deepEqual(ws.sent.at(-1), { event: "hotsock.unsubscribe", channel: "room" })
  client.terminate()
  assert.ok(ws.closed)
})

test("reconnects with a fresh token after a drop and re-subscribes every bound channel", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  const events = []
  client.bind("@@connect", () => events.push("connect"))
  client.bind("@@disconnect", () => events.push("disconnect"))
  client.channels("a").bind("x", () => {})
  client.channels("b").bind("y", () => {})
  t.mock.timers.tick(1)
  await flush()
  t.mock.timers.tick(1)
  const first = FakeSocket.all[0]
  first.connected()
  t.mock.timers.tick(250)
  assert.deepEqual(first.framesOf("hotsock.subscribe").map((f) => f.channel), ["a", "b"])

  first.dropped()
  assert.equal(client.state, "disconnected")
  assert.equal(client.connectionId, null)
  // Backoff: nothing right away, a new socket within the first delay (≤ 500 ms).
  assert.equal(FakeSocket.all.length, 1)
  t.mock.timers.tick(500)
  await flush()
  assert.equal(FakeSocket.all.length, 2)
  const second = FakeSocket.all[1]
  assert.equal(new URL(second.url).searchParams.get("token"), "token-2")
  t.mock.timers.tick(1)
  second.connected("conn-2")
  assert.equal(client.connectionId, "conn-2")
  t.mock.timers.tick(250)
  assert.deepEqual(second.framesOf("hotsock.subscribe").map((f) => f.channel), ["a", "b"])
  assert.deepEqual(events, ["connect", "disconnect", "connect"])
  client.terminate()
})

test("backoff grows while the server stays unreachable", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  for (const limit of [500, 1000, 2000, 4000]) {
    t.mock.timers.tick(1)
    await flush()
    const ws = FakeSocket.all.at(-1)
    const before = FakeSocket.all.length
    ws.dropped() // closed before hotsock.connected
    t.mock.timers.tick(limit / 2 - 1)
    await flush()
    assert.equal(FakeSocket.all.length, before, `no retry before ${limit / 2} ms`)
    t.mock.timers.tick(limit / 2 + 1)
    await flush()
    assert.equal(FakeSocket.all.length, before + 1, `a retry within ${limit} ms`)
  }
  client.terminate()
})

test("reconnects when hotsock.connected does not arrive within 5 s", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  t.mock.timers.tick(1)
  await flush()
  t.mock.timers.tick(1) // onopen
  const ws = FakeSocket.all[0]
  t.mock.timers.tick(5000)
  assert.ok(ws.closed, "the silent socket is closed")
  client.terminate()
})

test("channel errors settle the subscription the way hotsock-js does", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  const denied = client.channels("secret")
  denied.bind("x", () => {})
  const already = client.channels("twice")
  already.bind("x", () => {})
  await flush()
  await flush()
  const ws = FakeSocket.all[0]
  ws.connected()
  t.mock.timers.tick(250)
  ws.receive({
    event: "hotsock.error",
    channel: "secret",
    data: {},
    error: { code: "SUBSCRIBE_PERMISSION_DENIED", message: "no" },
  })
  ws.receive({
    event: "hotsock.error",
    channel: "twice",
    data: {},
    error: { code: "ALREADY_SUBSCRIBED", message: "already" },
  })
  await assert.rejects(denied.subscribed(), { code: "SUBSCRIBE_PERMISSION_DENIED" })
  assert.equal(denied.state, "failed")
  assert.equal(already.state, "subscribed")
  await already.subscribed()
  client.terminate()
})

/** A client whose first socket is connected (fake timers on), and that socket. */
async function connectedClient(t, extra) {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient(extra)
  client.bind("@@connect", () => {})
  await flush()
  await flush()
  const ws = FakeSocket.all.at(-1)
  ws.connected()
  return { client, ws }
}

/** Drops `ws` and returns the next socket once it says hotsock.connected. */
async function reconnect(t, ws, id) {
  ws.dropped()
  t.mock.timers.tick(500)
  await flush()
  const next = FakeSocket.all.at(-1)
  assert.notEqual(next, ws, "a new socket")
  next.connected(id)
  return next
}

const subscribed = (channel, { alias, auto, uid = "jim" } = {}) => ({
  event: "hotsock.subscribed",
  channel,
  data: auto ? { autoSubscribed: true } : {},
  meta: alias ? { uid, umd: null, channelAlias: alias } : { uid, umd: null },
})

test("a channel bound by its alias gets the frames sent for its real name, each binding once", async (t) => {
  const { client, ws } = await connectedClient(t)
  const seen = []
  const room = client.channels("room")
  room.bind("chat", (m) => seen.push(`alias:${m.data}`))
  client.bind("chat", (m) => seen.push(`any:${m.channel}`))
  const pending = room.subscribed()
  t.mock.timers.tick(250)
  assert.deepEqual(ws.framesOf("hotsock.subscribe"), [{ event: "hotsock.subscribe", channel: "room" }])

  // The answer names the real channel; the alias is only in meta.
  ws.receive(subscribed("room-42", { alias: "room" }))
  assert.equal(await pending, room, "the pending subscribe by alias is resolved")
  assert.equal(room.state, "subscribed")
  assert.equal(room.realName, "room-42")
  assert.equal(room.alias, "room")
  assert.deepEqual(client.channelAliasToReal, { room: "room-42" })
  assert.deepEqual(client.channelRealToAlias, { "room-42": "room" })

  // Binding the real name too shares the subscription: no second subscribe.
  const real = client.channels("room-42")
  const realBinding = real.bind("chat", (m) => seen.push(`real:${m.data}`))
  assert.equal(real.state, "subscribed")
  assert.equal(ws.framesOf("hotsock.subscribe").length, 1)

  ws.receive({ id: "01", event: "chat", channel: "room-42", data: "hi", meta: {} })
  assert.deepEqual(seen, ["alias:hi", "any:room-42", "real:hi"], "bind order, each once")

  // Publishing by the alias sends the alias (the server accepts either name).
  await room.sendMessage("chat", { data: "yo" })
  assert.deepEqual(ws.sent.at(-1), { event: "chat", channel: "room", data: "yo" })

  // The last binding under either name gone: one unsubscribe, by the real name.
  realBinding.unbind()
  assert.equal(ws.framesOf("hotsock.unsubscribe").length, 0, "still bound under the alias")
  room.unbind()
  assert.deepEqual(ws.framesOf("hotsock.unsubscribe"), [{ event: "hotsock.unsubscribe", channel: "room-42" }])
  assert.equal(room.state, "unsubscribed")
  client.terminate()
})

test("an alias equal to the channel name does not double dispatch", async (t) => {
  const { client, ws } = await connectedClient(t)
  let calls = 0
  client.channels("same").bind("e", () => calls++)
  t.mock.timers.tick(250)
  ws.receive(subscribed("same", { alias: "same" }))
  ws.receive({ id: "01", event: "e", channel: "same", data: null })
  assert.equal(calls, 1)
  client.terminate()
})

test("auto-subscribed channels are never subscribed or unsubscribed by the client", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  const notes = []
  // Bound before the connection exists: the server's auto-subscription covers it.
  const byAlias = client.channels("notifications")
  byAlias.bind("notification", (m) => notes.push(m.data))
  await flush()
  await flush()
  const ws = FakeSocket.all[0]
  ws.connected()
  ws.receive(subscribed("notifications-jim", { alias: "notifications", auto: true }))
  t.mock.timers.tick(250)
  assert.deepEqual(ws.framesOf("hotsock.subscribe"), [])
  assert.equal(byAlias.state, "subscribed")
  assert.equal(byAlias.autoSubscribed, true)
  await byAlias.subscribed()

  // Another auto-subscription nobody has bound yet: binding it later sends nothing either.
  ws.receive(subscribed("alerts-jim", { auto: true }))
  const alerts = client.channels("alerts-jim")
  const alertBinding = alerts.bind("alert", () => {})
  const byReal = client.channels("notifications-jim")
  const realBinding = byReal.bind("notification", (m) => notes.push(`real:${m.data}`))
  assert.equal(alerts.state, "subscribed")
  assert.equal(byReal.state, "subscribed")
  assert.deepEqual(ws.framesOf("hotsock.subscribe"), [])

  ws.receive({ id: "01", event: "notification", channel: "notifications-jim", data: "one" })
  ws.receive({ id: "02", event: "notification", channel: "notifications-jim", data: "two" })
  assert.deepEqual(notes, ["one", "real:one", "two", "real:two"])

  alertBinding.unbind()
  realBinding.unbind()
  byAlias.unbind()
  assert.deepEqual(ws.framesOf("hotsock.unsubscribe"), [], "the server's subscriptions stay")
  byAlias.bind("notification", (m) => notes.push(`again:${m.data}`))

  // After a reconnect the server auto-subscribes again; the client sends nothing.
  const second = await reconnect(t, ws, "conn-2")
  assert.deepEqual(client.channelAliasToReal, {}, "aliases are per connection")
  assert.equal(byAlias.state, "subscribing")
  second.receive(subscribed("notifications-jim", { alias: "notifications", auto: true }))
  assert.equal(byAlias.state, "subscribed")
  t.mock.timers.tick(250)
  assert.deepEqual(second.framesOf("hotsock.subscribe"), [])
  second.receive({ id: "03", event: "notification", channel: "notifications-jim", data: "three" })
  assert.deepEqual(notes.slice(4), ["again:three"])
  client.terminate()
})

/** An unsigned JWT-shaped token with these claims (the client only reads its payload). */
function tokenWith(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url")
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`
}

test("the auto-subscribe channels of a connect token are its exact names with autoSubscribe", () => {
  const token = tokenWith({
    channels: {
      "feed-jim": { autoSubscribe: true, alias: "feed" },
      "room": { subscribe: true },
      "news.*": { autoSubscribe: true },
      "#regex:^x$": { autoSubscribe: true },
      "off": { autoSubscribe: false },
    },
  })
  assert.deepEqual(autoSubscribeChannelsOf(token), ["feed-jim"])
  assert.deepEqual(autoSubscribeChannelsOf("token-1"), [], "an opaque token names none")
  assert.deepEqual(autoSubscribeChannelsOf("a.%%%.b"), [], "an unreadable payload names none")
})

test("bound channels wait for a slow auto-subscription the token names, then subscribe once", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const token = tokenWith({ channels: { "feed-jim": { autoSubscribe: true, alias: "feed" }, room: { subscribe: true } } })
  const client = newClient({ connectTokenFn: async () => token })
  const feed = client.channels("feed")
  feed.bind("item", () => {})
  const room = client.channels("room")
  room.bind("chat", () => {})
  await flush()
  await flush()
  const ws = FakeSocket.all[0]
  ws.connected()
  // The server is slower than SUBSCRIBE_DELAY_MS: nothing goes out meanwhile.
  t.mock.timers.tick(1000)
  assert.deepEqual(ws.framesOf("hotsock.subscribe"), [])
  ws.receive(subscribed("feed-jim", { alias: "feed", auto: true }))
  assert.equal(feed.state, "subscribed")
  assert.deepEqual(
    ws.framesOf("hotsock.subscribe").map((f) => f.channel),
    ["room"],
    "the answer releases the other bound channels; the alias is never subscribed",
  )
  client.terminate()
})

/** Connected with `room` bound and the token's auto-subscription of `feed-jim` unanswered. */
async function connectedAwaitingFeed(t) {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const token = tokenWith({ channels: { "feed-jim": { autoSubscribe: true }, room: { subscribe: true } } })
  const client = newClient({ connectTokenFn: async () => token })
  client.channels("room").bind("chat", () => {})
  await flush()
  await flush()
  const ws = FakeSocket.all[0]
  ws.connected()
  return { client, ws }
}

test("an auto-subscription that never answers holds bound channels back at most 5 s", async (t) => {
  const { client, ws } = await connectedAwaitingFeed(t)
  t.mock.timers.tick(4999)
  assert.deepEqual(ws.framesOf("hotsock.subscribe"), [])
  t.mock.timers.tick(1)
  assert.deepEqual(ws.framesOf("hotsock.subscribe").map((f) => f.channel), ["room"])
  client.terminate()
})

test("a refused auto-subscription counts as answered", async (t) => {
  const { client, ws } = await connectedAwaitingFeed(t)
  t.mock.timers.tick(300)
  assert.deepEqual(ws.framesOf("hotsock.subscribe"), [])
  ws.receive({ event: "hotsock.error", channel: "feed-jim", error: { code: "INVALID_CHANNEL", message: "no" } })
  assert.deepEqual(ws.framesOf("hotsock.subscribe").map((f) => f.channel), ["room"])
  client.terminate()
})

test("resume: positions are tracked per channel and named when it is subscribed again after a drop", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient({ resume: true })
  const feed = client.channels("feed")
  const seen = []
  feed.bind("item", (m) => seen.push(m.data))
  await flush()
  await flush()
  const first = FakeSocket.all[0]
  first.connected()
  t.mock.timers.tick(250)
  assert.deepEqual(first.framesOf("hotsock.subscribe"), [
    { event: "hotsock.subscribe", channel: "feed", data: { resume: true } },
  ])
  first.receive({ event: "hotsock.subscribed", channel: "feed", data: { position: "01P0" }, meta: {} })
  assert.equal(feed.position, "01P0")
  assert.equal(feed.recovered, null)
  first.receive({ id: "01M1", event: "item", channel: "feed", data: 1 })
  first.receive({ event: "hotsock.channelStorageUpdated", channel: "feed", key: "k", data: 1 })
  assert.equal(feed.position, "01M1", "messages move the position; frames without one do not")
  first.receive({ event: "hotsock.channelStorageUpdated", channel: "feed", key: "k", data: 2, position: "01S1" })
  first.receive({ event: "hotsock.memberAdded", channel: "feed", data: {}, position: "01S1.000001" })
  assert.equal(feed.position, "01S1.000001", "so do storage updates and member events with a position")

  const second = await reconnect(t, first, "conn-2")
  t.mock.timers.tick(250)
  const resumeAt = { position: "01S1.000001", connectionIds: ["conn-1"] }
  assert.deepEqual(second.framesOf("hotsock.subscribe"), [
    { event: "hotsock.subscribe", channel: "feed", data: { resume: resumeAt } },
  ])
  // Recovered with frames to follow: it stands where it named, and what
  // either connection sent without echo is its own.
  second.receive({ event: "hotsock.subscribed", channel: "feed", data: { position: "01S1.000001", recovered: true }, meta: {} })
  assert.equal(feed.recovered, true)
  const third = await reconnect(t, second, "conn-3")
  t.mock.timers.tick(250)
  assert.deepEqual(third.framesOf("hotsock.subscribe").at(-1).data, {
    resume: { position: "01S1.000001", connectionIds: ["conn-1", "conn-2"] },
  })
  // Recovered with nothing to follow: it stands at its new welcome.
  third.receive({ event: "hotsock.subscribed", channel: "feed", data: { position: "01P3", recovered: true }, meta: {} })
  assert.equal(feed.position, "01P3")
  assert.deepEqual(feed.positionConnections, ["conn-3"])
  third.receive({ id: "01M2", event: "item", channel: "feed", data: 2 })
  assert.deepEqual(seen, [1, 2])
  assert.equal(feed.position, "01M2")
  // Unbound on purpose: the next subscribe starts afresh.
  feed.unbind()
  feed.bind("item", () => {})
  t.mock.timers.tick(1)
  assert.deepEqual(third.framesOf("hotsock.subscribe").at(-1), {
    event: "hotsock.subscribe",
    channel: "feed",
    data: { resume: true },
  })
  client.terminate()
})

test("resume: a server that does not grant it leaves the client subscribing plainly after a drop", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient({ resume: true })
  const feed = client.channels("feed")
  feed.bind("item", () => {})
  await flush()
  await flush()
  const first = FakeSocket.all[0]
  first.connected()
  t.mock.timers.tick(250)
  first.receive({ event: "hotsock.subscribed", channel: "feed", data: {}, meta: {} })
  first.receive({ id: "01M1", event: "item", channel: "feed", data: 1 })
  assert.equal(feed.position, null, "no position was given: none is tracked")
  const second = await reconnect(t, first, "conn-2")
  t.mock.timers.tick(250)
  assert.deepEqual(second.framesOf("hotsock.subscribe").at(-1).data, { resume: true })
  client.terminate()
})

test("the hotsock-js resume wrapper names the last position in the library's subscribe frames", () => {
  // A socket the way a browser's is used by hotsock-js: send(), message events.
  class EventSocket extends EventTarget {
    constructor(url) {
      super()
      this.url = url
      this.sent = []
    }
    send(raw) {
      this.sent.push(raw)
    }
    receive(frame) {
      this.dispatchEvent(Object.assign(new Event("message"), { data: JSON.stringify(frame) }))
    }
  }
  const saved = globalThis.WebSocket
  try {
    const Resuming = installResume(EventSocket)
    assert.equal(globalThis.WebSocket, Resuming)
    const first = new globalThis.WebSocket("ws://x")
    first.send(JSON.stringify({ event: "hotsock.subscribe", channel: "feed", data: { token: "t" } }))
    assert.deepEqual(JSON.parse(first.sent[0]), {
      event: "hotsock.subscribe",
      channel: "feed",
      data: { token: "t", resume: true },
    })
    first.receive({ event: "hotsock.connected", data: { connectionId: "conn-1" } })
    first.receive({ event: "hotsock.subscribed", channel: "feed", data: { position: "01P0" }, meta: {} })
    first.receive({ id: "01M0", event: "item", channel: "feed", data: 1 })
    first.receive({ event: "hotsock.memberAdded", channel: "feed", data: {}, position: "01M0.000001" })
    first.receive({ event: "hotsock.channelStorageUpdated", channel: "feed", key: "k", data: 1 })
    first.receive({ id: "01M1", event: "item", channel: "feed", data: 1 })
    first.receive({ id: "01M9", event: "item", channel: "elsewhere", data: 1 })
    first.send("not json")
    assert.equal(first.sent[1], "not json", "other frames go as they are")
    // After the library reconnects, on a new socket:
    const second = new globalThis.WebSocket("ws://x")
    second.send(JSON.stringify({ event: "hotsock.subscribe", channel: "feed" }))
    assert.deepEqual(JSON.parse(second.sent[0]).data, {
      resume: { position: "01M1", connectionIds: ["conn-1"] },
    })
    second.receive({ event: "hotsock.connected", data: { connectionId: "conn-2" } })
    second.receive({ event: "hotsock.subscribed", channel: "feed", data: { position: "01M1", recovered: true }, meta: {} })
    // A replayed frame: what conn-1 published without echo may still follow.
    second.receive({ event: "hotsock.channelStorageUpdated", channel: "feed", key: "k", data: 2, position: "01S2" })
    const third = new globalThis.WebSocket("ws://x")
    third.send(JSON.stringify({ event: "hotsock.subscribe", channel: "feed" }))
    assert.deepEqual(JSON.parse(third.sent[0]).data, {
      resume: { position: "01S2", connectionIds: ["conn-1", "conn-2"] },
    })
    second.send(JSON.stringify({ event: "hotsock.unsubscribe", channel: "feed" }))
    second.send(JSON.stringify({ event: "hotsock.subscribe", channel: "feed" }))
    assert.deepEqual(JSON.parse(second.sent[2]).data, { resume: true }, "an unsubscribe forgets it")
  } finally {
    globalThis.WebSocket = saved
  }
})

test("hotsock.ping is answered with hotsock.pong at once, even before hotsock.connected", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  client.channels("room").bind("x", () => {})
  await flush()
  await flush()
  const ws = FakeSocket.all[0]
  ws.receive({ event: "hotsock.ping", data: {} })
  assert.deepEqual(ws.sent, [{ event: "hotsock.pong" }])
  client.terminate()
})

test("a subscription the server drops is subscribed again while bindings remain", async (t) => {
  const { client, ws } = await connectedClient(t)
  const room = client.channels("room")
  room.bind("chat", () => {})
  const idle = client.channels("idle")
  const idleBinding = idle.bind("chat", () => {})
  t.mock.timers.tick(250)
  ws.receive(subscribed("room-42", { alias: "room" }))
  ws.receive(subscribed("idle"))
  idleBinding.unbind()
  assert.deepEqual(ws.framesOf("hotsock.unsubscribe"), [{ event: "hotsock.unsubscribe", channel: "idle" }])
  ws.sent = []

  // Server-initiated: by the name it was bound under, details cleared.
  ws.receive({
    event: "hotsock.unsubscribed",
    channel: "room-42",
    data: {},
    meta: { uid: "jim", umd: null, channelAlias: "room" },
  })
  assert.equal(room.uid, null)
  assert.deepEqual(room.members, [])
  assert.equal(room.state, "subscribing")
  // The answer to our own unsubscribe changes nothing.
  ws.receive({ event: "hotsock.unsubscribed", channel: "idle", data: {}, meta: { uid: "jim", umd: null } })
  assert.deepEqual(ws.sent, [{ event: "hotsock.subscribe", channel: "room" }])
  ws.receive(subscribed("room-42", { alias: "room" }))
  assert.equal(room.state, "subscribed")

  // NOT_SUBSCRIBED for a channel we think we have (here named by the alias we sent).
  ws.sent = []
  ws.receive({ event: "hotsock.error", channel: "room", data: {}, error: { code: "NOT_SUBSCRIBED", message: "no" } })
  assert.deepEqual(ws.sent, [{ event: "hotsock.subscribe", channel: "room" }])
  assert.equal(idle.state, "unsubscribed")
  client.terminate()
})

test("a subscribe error naming the alias settles the alias channel; reconnects retry it", async (t) => {
  const { client, ws } = await connectedClient(t)
  const secret = client.channels("secret")
  secret.bind("x", () => {})
  t.mock.timers.tick(250)
  ws.receive({
    event: "hotsock.error",
    channel: "secret",
    data: {},
    error: { code: "SUBSCRIBE_PERMISSION_DENIED", message: "no" },
  })
  await assert.rejects(secret.subscribed(), { code: "SUBSCRIBE_PERMISSION_DENIED", channel: "secret" })
  assert.equal(secret.state, "failed")

  const second = await reconnect(t, ws, "conn-2")
  t.mock.timers.tick(250)
  assert.deepEqual(second.framesOf("hotsock.subscribe"), [{ event: "hotsock.subscribe", channel: "secret" }])
  second.receive(subscribed("secret-9", { alias: "secret" }))
  await secret.subscribed()
  client.terminate()
})

test("http() posts with the connection's credentials; listAllMessages pages with after", async () => {
  const client = newClient()
  client.bind("@@connect", () => {})
  await flush()
  await flush()
  FakeSocket.all[0].connected("id/+=", "jim")
  const requests = []
  const ids = Array.from({ length: 230 }, (_, i) => `m${String(i).padStart(4, "0")}`)
  globalThis.fetch = async (url, init) => {
    const body = JSON.parse(init.body)
    requests.push({ url, body })
    if (url.includes("/connection/nope")) {
      return new Response(JSON.stringify({ error: { code: "NOT_FOUND", message: "unknown" } }), {
        status: 404,
      })
    }
    const start = body.after ? ids.indexOf(body.after) + 1 : 0
    const page = ids.slice(start, start + 100).map((id) => ({ id, event: "e", channel: body.channel }))
    return new Response(JSON.stringify({ messages: page }), { status: 200 })
  }
  const all = await client.listAllMessages("room", { expandReactions: true })
  assert.deepEqual(all.map((m) => m.id), ids)
  assert.equal(requests.length, 3)
  assert.deepEqual(requests.map((r) => r.body.after), [undefined, "m0099", "m0199"])
  assert.ok(requests.every((r) => r.body.expandReactions === true && r.body.channel === "room"))
  const url = new URL(requests[0].url)
  assert.equal(url.origin + url.pathname, "http://127.0.0.1:4000/connection/listMessages")
  assert.equal(url.searchParams.get("connectionId"), "id/+=")
  assert.equal(url.searchParams.get("connectionSecret"), "s3cret")
  await assert.rejects(client.http("nope", {}), { code: "NOT_FOUND", status: 404 })
  client.terminate()
})

test("storage: setStorage sends the frame, updates reach channel bindings, get/list use the HTTP API", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  const updates = []
  const lobby = client.channels("lobby")
  lobby.bind("hotsock.channelStorageUpdated", (m) => updates.push(`${m.key}=${JSON.stringify(m.data)}`))
  await flush()
  const ws = FakeSocket.all[0]
  ws.connected()
  t.mock.timers.tick(250)
  ws.receive({ event: "hotsock.subscribed", channel: "lobby", data: {}, meta: { uid: "jim", umd: null } })
  // Catch-up frames right after hotsock.subscribed, then a live change; another channel's is not ours.
  ws.receive({ event: "hotsock.channelStorageUpdated", channel: "lobby", key: "settings", data: { mode: "duel" }, meta: { uid: "ada", umd: null } })
  ws.receive({ event: "hotsock.channelStorageUpdated", channel: "elsewhere", key: "x", data: 1, meta: { uid: "ada", umd: null } })
  lobby.setStorage("player.jim", { ready: true })
  assert.deepEqual(ws.sent.at(-1), { event: "hotsock.channelStorageSet", channel: "lobby", key: "player.jim", data: { ready: true } })
  client.setStorage("lobby", "player.jim", null)
  assert.deepEqual(ws.sent.at(-1), { event: "hotsock.channelStorageSet", channel: "lobby", key: "player.jim", data: null })
  assert.deepEqual(updates, ['settings={"mode":"duel"}'])

  const requests = []
  globalThis.fetch = async (url, init) => {
    const body = JSON.parse(init.body)
    requests.push({ op: new URL(url).pathname, body })
    if (url.includes("channelStorageGet")) {
      const set = body.key === "settings"
      return new Response(JSON.stringify({ event: "hotsock.channelStorageData", channel: "lobby", key: body.key, data: set ? { mode: "duel" } : null, meta: set ? { uid: "ada", umd: null } : null }), { status: 200 })
    }
    return new Response(JSON.stringify({ items: [{ key: "settings", data: { mode: "duel" }, meta: { uid: "ada", umd: null } }] }), { status: 200 })
  }
  assert.deepEqual(await client.getStorage("lobby", "settings"), { data: { mode: "duel" }, meta: { uid: "ada", umd: null } })
  assert.deepEqual(await client.getStorage("lobby", "unset"), { data: null, meta: null })
  const items = await client.listStorage("lobby", { keys: ["settings"], after: "a" })
  assert.deepEqual(items.map((i) => i.key), ["settings"])
  assert.deepEqual(requests.map((r) => r.op), [
    "/connection/channelStorageGet",
    "/connection/channelStorageGet",
    "/connection/channelStorageList",
  ])
  assert.deepEqual(requests[2].body, { channel: "lobby", keys: ["settings"], after: "a" })
  client.terminate()
})

test("umd: umdUpdate sends the token, memberUpdated replaces the members", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] })
  const client = newClient()
  const updates = []
  const room = client.channels("presence.room")
  room.bind("hotsock.memberUpdated", (m) => updates.push(m.data.member))
  await flush()
  const ws = FakeSocket.all[0]
  ws.connected()
  t.mock.timers.tick(250)
  ws.receive({
    event: "hotsock.subscribed",
    channel: "presence.room",
    data: { members: [{ uid: "jim", umd: "a" }, { uid: "pam", umd: null }] },
    meta: { uid: "jim", umd: "a" },
  })
  client.umdUpdate("tok", { channel: "presence.room" })
  assert.deepEqual(ws.sent.at(-1), { event: "hotsock.umdUpdate", channel: "presence.room", data: { token: "tok" } })
  client.umdUpdate("tok2")
  assert.deepEqual(ws.sent.at(-1), { event: "hotsock.umdUpdate", data: { token: "tok2" } })
  const list = (jim, pam) => [{ uid: "jim", umd: jim }, { uid: "pam", umd: pam }]
  ws.receive({ event: "hotsock.memberUpdated", channel: "presence.room", data: { member: { uid: "pam", umd: "p" }, members: list("a", "p") } })
  assert.deepEqual(room.members, list("a", "p"))
  ws.receive({ event: "hotsock.memberUpdated", channel: "presence.room", data: { member: { uid: "jim", umd: "b" }, members: list("b", "p") } })
  assert.deepEqual(room.members, list("b", "p"))
  assert.deepEqual(updates, [{ uid: "pam", umd: "p" }, { uid: "jim", umd: "b" }])
  client.terminate()
})
