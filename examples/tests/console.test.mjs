// Browser tests of the web console (console/, served at /console by the local
// stage's HTTP router, as by a stack's HTTP function): what a developer sees and
// does with a token, against the real stage. Every assertion reads what the page
// shows (the frames log, the inspector, the channel view, the events list).
import assert from "node:assert/strict"
import { createHmac } from "node:crypto"
import { test } from "node:test"
import {
  apiKey,
  assertNoProblems,
  baseUrl,
  eventually,
  mintToken,
  newPage,
  screenshot,
  serverPublish,
  sharedBrowser,
} from "./helpers.mjs"

const CONSOLE_URL = `${baseUrl}/console`
const DESKTOP = { width: 1440, height: 900 }
const PHONE = { width: 390, height: 844 }

const browser = sharedBrowser()

const unique = (prefix) => `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
const now = () => Math.floor(Date.now() / 1000)

async function openConsole({ viewport = DESKTOP, url = CONSOLE_URL } = {}) {
  const context = await browser().newContext({ viewport })
  const page = await newPage(browser(), context)
  await page.goto(url)
  await page.waitForSelector("body[data-ready=true]")
  return page
}

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`)
const field = (page, name) => page.locator(`[data-field="${name}"]`)

/** Problems newPage() recorded, without the ones a test provoked on purpose. */
function assertNoProblemsBut(page, ...expected) {
  page.problems = page.problems.filter((p) => !expected.some((re) => re.test(p)))
  assertNoProblems(page)
}
// Chromium logs a refused upgrade as a console error; the console handles it.
const REFUSED_UPGRADE = /WebSocket connection to .* failed/

/** Claims granting everything on one channel. */
const allOn = (uid, channel) => ({
  uid,
  umd: { name: uid },
  channels: {
    [channel]: {
      subscribe: true,
      historyStart: 0,
      getInfo: true,
      messages: { "*": { publish: true, echo: true, store: 3600, react: true } },
      storage: { "*": { observe: true, get: true, set: true } },
    },
  },
})

/** The frames log: direction, event, channel, raw text, filtered out or not, the reason shown. */
function framesOf(page) {
  return page.locator("[data-testid=frames] > li").evaluateAll((items) =>
    items.map((li) => ({
      dir: li.dataset.dir,
      event: li.dataset.event,
      channel: li.dataset.channel,
      raw: li.dataset.raw,
      hidden: li.hidden,
      why: li.querySelector("[data-testid=frame-why]")?.textContent ?? null,
    })),
  )
}

const parse = (raw) => {
  try {
    return JSON.parse(raw)
  } catch {
    return null
  }
}

/**
 * Waits for a log entry like `want` ({dir, event, channel, where(frame, entry)})
 * among the entries from index `after` on; returns it with its parsed frame.
 */
async function waitFrame(page, want, { after = 0, timeout = 10_000 } = {}) {
  return eventually(
    async () => {
      const entries = (await framesOf(page)).slice(after)
      const hit = entries.find(
        (e) =>
          (!want.dir || e.dir === want.dir) &&
          (!want.event || e.event === want.event) &&
          (want.channel === undefined || e.channel === want.channel) &&
          (!want.where || want.where(parse(e.raw), e)),
      )
      assert.ok(
        hit,
        `no entry like ${JSON.stringify(want)} among: ${entries.map((e) => `${e.dir} ${e.event || e.raw}`).join(" | ")}`,
      )
      return { ...hit, frame: parse(hit.raw) }
    },
    { timeout },
  )
}

const logLength = async (page) => (await framesOf(page)).length

async function useToken(page, token) {
  await byTestId(page, "token-input").fill(token)
  await byTestId(page, "connect").click()
}

async function connect(page, token) {
  const after = await logLength(page)
  await useToken(page, token)
  await page.waitForSelector("body[data-conn=connected]")
  return waitFrame(page, { dir: "in", event: "hotsock.connected" }, { after })
}

/** Picks an action from the menu, fills its fields and sends it. */
async function act(page, action, fields = {}) {
  await byTestId(page, "tab-frames").click()
  await byTestId(page, "action").selectOption(action)
  for (const [name, value] of Object.entries(fields)) {
    if (name === "reactAction") await field(page, name).selectOption(value)
    else await field(page, name).fill(value)
  }
  await byTestId(page, "action-submit").click()
}

async function subscribe(page, channel) {
  const after = await logLength(page)
  await act(page, "subscribe", { channel, token: "" })
  await waitFrame(page, { dir: "out", event: "hotsock.subscribe", channel }, { after })
  return waitFrame(page, { dir: "in", event: "hotsock.subscribed", channel }, { after })
}

/** A token signed with a key that is not the stage's. */
function foreignToken(claims) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url")
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ exp: now() + 600, scope: "connect", ...claims })}`
  const signature = createHmac("sha256", "not-the-stage-key").update(head).digest("base64url")
  return `${head}.${signature}`
}

test("a pasted token is shown parsed and verified, and the console connects with it", async () => {
  const uid = unique("u")
  const channel = unique("room")
  const token = await mintToken(allOn(uid, channel))
  const page = await openConsole()
  await byTestId(page, "token-input").fill(token)
  await byTestId(page, "token-input").dispatchEvent("paste")
  await page.waitForSelector("body[data-conn=connected]")

  const connected = await waitFrame(page, { dir: "in", event: "hotsock.connected" })
  assert.equal(connected.frame.meta.uid, uid)
  assert.ok(connected.frame.data.connectionSecret, "the greeting is shown whole")
  assert.equal(await byTestId(page, "conn-id").textContent(), connected.frame.data.connectionId)
  assert.equal(await byTestId(page, "conn-status").textContent(), "connected")

  assert.deepEqual(JSON.parse(await byTestId(page, "token-header").textContent()), { alg: "HS256", typ: "JWT" })
  const claims = JSON.parse(await byTestId(page, "token-claims").textContent())
  assert.equal(claims.uid, uid)
  assert.equal(claims.scope, "connect", "the dev endpoint filled in the scope")
  assert.equal(claims.channels[channel].messages["*"].echo, true)

  const left = async () => Number(await byTestId(page, "expiry").getAttribute("data-left"))
  const first = await left()
  assert.ok(first > 3500 && first <= 3600, `about an hour left: ${first}`)
  assert.match(await byTestId(page, "expiry").textContent(), /^expires in 59 min/)
  await eventually(async () => assert.ok((await left()) < first, "the countdown runs"), { timeout: 3000 })

  await eventually(async () => assert.equal(await byTestId(page, "verdict").getAttribute("data-ok"), "true"))
  assert.match(await byTestId(page, "verdict").textContent(), /The stage accepts this token/)
  assertNoProblems(page)
})

test("a refused token: the stage's code and its meaning, in the inspector and the log", async () => {
  const uid = unique("u")
  const cases = [
    [await mintToken({ uid, exp: now() - 60 }), "TOKEN_EXPIRED", /exp has passed/],
    [foreignToken({ uid }), "TOKEN_BAD_SIGNATURE", /does not verify with this stage's key/],
    [await mintToken({ uid, scope: "subscribe" }), "TOKEN_SCOPE_NOT_CONNECT", /without the connect scope/],
  ]
  const page = await openConsole()
  for (const [token, code, meaning] of cases) {
    const after = await logLength(page)
    await useToken(page, token)
    await page.waitForSelector("body[data-conn=refused]")
    assert.equal(await byTestId(page, "conn-status").textContent(), `refused: ${code}`)
    const refused = await waitFrame(page, { dir: "note", where: (_, e) => e.why?.includes(code) }, { after })
    assert.match(refused.why, meaning, "the log says what the code means")
    await eventually(async () => assert.equal(await byTestId(page, "verdict-code").textContent(), code))
    assert.match(await byTestId(page, "verdict").textContent(), meaning)
    const entries = (await framesOf(page)).slice(after)
    assert.ok(
      !entries.some((e) => e.event === "hotsock.connected"),
      "no connection was opened",
    )
  }
  // A single-use token opens one connection; the next attempt is refused, and
  // the stage says so (its explanation reads the token's jti without spending it).
  const once = await mintToken({ uid, singleUse: true, jti: unique("jti") })
  await connect(page, once)
  const after = await logLength(page)
  await byTestId(page, "reconnect").click()
  await page.waitForSelector("body[data-conn=refused]")
  assert.equal(await byTestId(page, "conn-status").textContent(), "refused: TOKEN_ALREADY_USED")
  const spent = await waitFrame(page, { dir: "note", where: (_, e) => e.why?.includes("TOKEN_ALREADY_USED") }, { after })
  assert.match(spent.why, /already used/)
  assertNoProblemsBut(page, REFUSED_UPGRADE)
})

test("subscribe, send and receive; a refused frame shows its code's meaning", async () => {
  const uid = unique("u")
  const channel = unique("room")
  const page = await openConsole()
  await connect(page, await mintToken(allOn(uid, channel)))
  const subscribed = await subscribe(page, channel)
  assert.equal(subscribed.frame.meta.uid, uid)

  let after = await logLength(page)
  await act(page, "send", { channel, event: "greeting", data: '{"text":"hello"}' })
  const sent = await waitFrame(page, { dir: "out", event: "greeting", channel }, { after })
  assert.deepEqual(sent.frame, { event: "greeting", channel, data: { text: "hello" } })
  const echo = await waitFrame(page, { dir: "in", event: "greeting", channel }, { after })
  assert.deepEqual(echo.frame.data, { text: "hello" })
  assert.equal(echo.frame.meta.uid, uid)
  assert.match(echo.frame.id, /^[0-9A-HJKMNP-TV-Z]{26}$/)

  after = await logLength(page)
  const elsewhere = unique("elsewhere")
  await act(page, "send", { channel: elsewhere, event: "x", data: "plain words" })
  const plain = await waitFrame(page, { dir: "out", event: "x" }, { after })
  assert.equal(plain.frame.data, "plain words", "data that is not JSON is sent as a string")
  const denied = await waitFrame(page, { dir: "in", event: "hotsock.error", channel: elsewhere }, { after })
  assert.equal(denied.frame.error.code, "PUBLISH_PERMISSION_DENIED")
  assert.match(denied.why, /^PUBLISH_PERMISSION_DENIED — Neither publish \(while subscribed\) nor broadcast/)

  after = await logLength(page)
  await act(page, "subscribe", { channel: elsewhere })
  const refused = await waitFrame(page, { dir: "in", event: "hotsock.error", channel: elsewhere }, { after })
  assert.equal(refused.frame.error.code, "SUBSCRIBE_PERMISSION_DENIED")
  assert.match(refused.why, /No subscribe grant for the channel/)
  assertNoProblems(page)
})

test("the permissions explainer names the matching keys, their kinds and where an explicit false won", async () => {
  const uid = unique("u")
  const prefix = unique("room")
  const claims = {
    uid,
    channels: {
      [`${prefix}-*`]: {
        subscribe: true,
        historyStart: 0,
        messages: { "*": { publish: true, echo: true }, secret: { publish: false } },
      },
      [`#regex:^${prefix}-4[0-9]$`]: { subscribe: false },
      [`${prefix}-42`]: { alias: "answer", getInfo: true },
    },
  }
  const page = await openConsole()
  await connect(page, await mintToken(claims))

  // Every channel key of the token is offered.
  const chips = await byTestId(page, "channel-keys").locator("button").allTextContents()
  assert.deepEqual(chips.sort(), Object.keys(claims.channels).sort())

  const rows = (part) =>
    byTestId(page, "explanation")
      .locator(`table[data-part="${part}"] tr`)
      .evaluateAll((trs) =>
        Object.fromEntries(
          trs.map((tr) => [
            tr.dataset.directive,
            {
              value: JSON.parse(tr.dataset.value),
              why: tr.querySelector(".why > div").textContent,
              outcomes: [...tr.querySelectorAll("[data-outcome]")].map((s) => s.dataset.outcome),
            },
          ]),
        ),
      )
  // By the alias: the stage resolves it, then explains the real channel.
  await byTestId(page, "explain-channel").fill("answer")
  await byTestId(page, "explain-event").fill("secret")
  await byTestId(page, "explain-submit").click()
  await page.waitForSelector(`[data-testid=explanation] .explain[data-channel="answer"]`)
  assert.match(await byTestId(page, "explanation").textContent(), new RegExp(`"answer" is this token's alias of channel "${prefix}-42"`))
  const matched = await byTestId(page, "matched-keys").locator(".chip").evaluateAll((cs) => cs.map((c) => [c.dataset.kind, c.textContent]))
  assert.deepEqual(
    matched.map(([kind]) => kind).sort(),
    ["exact", "regex", "wildcard"],
  )
  const channel = await rows("channel")
  assert.equal(channel.subscribe.value, false)
  assert.equal(
    channel.subscribe.why,
    `explicit false in regex key "#regex:^${prefix}-4[0-9]$" wins over true in wildcard key "${prefix}-*"`,
  )
  assert.deepEqual(channel.subscribe.outcomes.sort(), ["overruled", "wins"])
  assert.equal(channel.getInfo.value, true)
  assert.equal(channel.historyStart.value, 0)
  assert.equal(channel.alias.value, "answer")
  const event = await rows("event")
  assert.equal(event.publish.value, false)
  assert.match(event.publish.why, /^explicit false in exact key "secret"/)
  assert.equal(event["send, subscribed"].value, false)
  assert.equal(event.echo.value, true)

  // Another channel of the wildcard: subscribe is granted there.
  await byTestId(page, "explain-channel").fill(`${prefix}-7`)
  await byTestId(page, "explain-event").fill("chat")
  await byTestId(page, "explain-submit").click()
  await page.waitForSelector(`[data-testid=explanation] .explain[data-channel="${prefix}-7"]`)
  assert.equal((await rows("channel")).subscribe.value, true)
  assert.equal((await rows("event"))["send, subscribed"].value, true)

  // A refused frame offers the same explanation, for the frame's channel and event.
  const after = await logLength(page)
  await act(page, "subscribe", { channel: `${prefix}-42` })
  await waitFrame(page, { dir: "in", event: "hotsock.error", channel: `${prefix}-42` }, { after })
  await page.locator("[data-testid=frames] > li.is-error button", { hasText: "explain the permissions" }).last().click()
  await page.waitForSelector(`[data-testid=explanation] .explain[data-channel="${prefix}-42"]`)
  assert.equal((await rows("channel")).subscribe.value, false)
  assertNoProblems(page)
})

test("channel storage: set, then get reads the value back", async () => {
  const uid = unique("u")
  const channel = unique("room")
  const page = await openConsole()
  await connect(page, await mintToken(allOn(uid, channel)))
  await subscribe(page, channel)

  let after = await logLength(page)
  await act(page, "storageSet", { channel, key: "title", data: '{"t":"Weekly sync"}' })
  await waitFrame(page, { dir: "out", event: "hotsock.channelStorageSet", channel }, { after })
  const updated = await waitFrame(page, { dir: "in", event: "hotsock.channelStorageUpdated", channel }, { after })
  assert.equal(updated.frame.key, "title")

  after = await logLength(page)
  await act(page, "storageGet", { channel, key: "title" })
  const data = await waitFrame(page, { dir: "in", event: "hotsock.channelStorageData", channel }, { after })
  assert.equal(data.frame.key, "title")
  assert.deepEqual(data.frame.data, { t: "Weekly sync" })
  assert.equal(data.frame.meta.uid, uid)

  after = await logLength(page)
  await act(page, "storageGet", { channel, key: "unset" })
  const unset = await waitFrame(page, { dir: "in", event: "hotsock.channelStorageData", channel }, { after })
  assert.deepEqual([unset.frame.key, unset.frame.data, unset.frame.meta], ["unset", null, null])
  assertNoProblems(page)
})

test("a reaction to a stored message reaches the channel", async () => {
  const uid = unique("u")
  const channel = unique("room")
  const page = await openConsole()
  await connect(page, await mintToken(allOn(uid, channel)))
  await subscribe(page, channel)
  let after = await logLength(page)
  await act(page, "send", { channel, event: "post", data: '{"text":"react to me"}' })
  const post = await waitFrame(page, { dir: "in", event: "post", channel }, { after })

  after = await logLength(page)
  await act(page, "react", { channel, messageId: post.frame.id, reaction: "👍", reactAction: "add" })
  const out = await waitFrame(page, { dir: "out", event: "hotsock.messageReaction" }, { after })
  assert.deepEqual(out.frame.data, { messageId: post.frame.id, reaction: "👍", action: "add" })
  const added = await waitFrame(page, { dir: "in", event: "hotsock.messageReactionAdded", channel }, { after })
  assert.deepEqual(added.frame.data, { messageId: post.frame.id, reaction: "👍", action: "add" })
  assert.equal(added.frame.meta.uid, uid)

  after = await logLength(page)
  await act(page, "react", { channel, messageId: post.frame.id, reaction: "👍", reactAction: "remove" })
  await waitFrame(page, { dir: "in", event: "hotsock.messageReactionRemoved", channel }, { after })
  assertNoProblems(page)
})

test("raw frames, ping and heartbeat go out as typed", async () => {
  const page = await openConsole()
  await connect(page, await mintToken({ uid: unique("u") }))
  let after = await logLength(page)
  await act(page, "raw", { raw: '{"event":"hotsock.ping"}' })
  await waitFrame(page, { dir: "out", event: "hotsock.ping" }, { after })
  const pong = await waitFrame(page, { dir: "in", event: "hotsock.pong" }, { after })
  assert.equal(pong.frame.data, "{}")

  after = await logLength(page)
  await act(page, "ping")
  await waitFrame(page, { dir: "in", event: "hotsock.pong" }, { after })
  await act(page, "heartbeat")
  await waitFrame(page, { dir: "out", event: "hotsock.heartbeat" }, { after })

  after = await logLength(page)
  await act(page, "raw", { raw: "this is not JSON" })
  const sent = await waitFrame(page, { dir: "out", where: (_, e) => e.raw === "this is not JSON" }, { after })
  assert.equal(sent.event, "")
  const invalid = await waitFrame(page, { dir: "in", event: "hotsock.error" }, { after })
  assert.equal(invalid.frame.error.code, "INVALID_MESSAGE")
  assert.match(invalid.why, /not JSON, not an object/)
  assertNoProblems(page)
})

test("disconnect and reconnect; a dropped socket comes back subscribed by itself", async () => {
  const uid = unique("u")
  const channel = unique("room")
  const page = await openConsole()
  const first = await connect(page, await mintToken(allOn(uid, channel)))
  await subscribe(page, channel)

  await byTestId(page, "disconnect").click()
  await page.waitForSelector("body[data-conn=idle]")
  assert.equal(await byTestId(page, "conn-status").textContent(), "disconnected")
  await waitFrame(page, { dir: "note", where: (_, e) => e.raw.startsWith("disconnected") })

  let after = await logLength(page)
  await byTestId(page, "reconnect").click()
  const second = await waitFrame(page, { dir: "in", event: "hotsock.connected" }, { after })
  assert.notEqual(second.frame.data.connectionId, first.frame.data.connectionId, "a new connection")
  await waitFrame(page, { dir: "in", event: "hotsock.subscribed", channel }, { after })
  await page.waitForSelector("body[data-conn=connected]")

  after = await logLength(page)
  await act(page, "drop")
  await waitFrame(page, { dir: "note", where: (_, e) => e.raw.includes("the socket closed (code 4000") }, { after })
  const third = await waitFrame(page, { dir: "in", event: "hotsock.connected" }, { after })
  assert.notEqual(third.frame.data.connectionId, second.frame.data.connectionId)
  await waitFrame(page, { dir: "out", event: "hotsock.subscribe", channel }, { after })
  await waitFrame(page, { dir: "in", event: "hotsock.subscribed", channel }, { after })
  assert.equal(await byTestId(page, "conn-id").textContent(), third.frame.data.connectionId)
  assertNoProblems(page)
})

test("the filter narrows the log by text and direction", async () => {
  const uid = unique("u")
  const channel = unique("room")
  const page = await openConsole()
  await connect(page, await mintToken(allOn(uid, channel)))
  await subscribe(page, channel)
  const after = await logLength(page)
  await act(page, "send", { channel, event: "needle", data: "{}" })
  await waitFrame(page, { dir: "in", event: "needle" }, { after })

  const shown = async () => (await framesOf(page)).filter((e) => !e.hidden)
  await byTestId(page, "frame-filter").fill("needle")
  await eventually(async () => {
    const visible = await shown()
    assert.deepEqual(
      visible.map((e) => `${e.dir} ${e.event}`),
      ["out needle", "in needle"],
    )
  })
  await byTestId(page, "frame-direction").selectOption("out")
  await eventually(async () => assert.deepEqual((await shown()).map((e) => `${e.dir} ${e.event}`), ["out needle"]))
  await byTestId(page, "frame-filter").fill("")
  await eventually(async () => {
    const visible = await shown()
    assert.ok(visible.length >= 2 && visible.every((e) => e.dir === "out"), "only what was sent")
  })
  await byTestId(page, "frame-direction").selectOption("all")
  await eventually(async () => assert.equal((await shown()).length, (await framesOf(page)).length))
  // A frame arriving while filtered is filtered too.
  await byTestId(page, "frame-filter").fill(unique("nothing-matches"))
  const before = await logLength(page)
  await act(page, "ping")
  await waitFrame(page, { dir: "in", event: "hotsock.pong" }, { after: before })
  assert.deepEqual(await shown(), [])
  assertNoProblems(page)
})

test("the channel view reads count, members, storage and history with reactions, and follows live", async () => {
  const uid = unique("ada")
  const channel = `presence.${unique("lobby")}`
  const page = await openConsole()
  await connect(page, await mintToken(allOn(uid, channel)))
  await subscribe(page, channel)
  let after = await logLength(page)
  await act(page, "storageSet", { channel, key: "topic", data: '"cards"' })
  await waitFrame(page, { dir: "in", event: "hotsock.channelStorageUpdated", channel }, { after })
  await act(page, "send", { channel, event: "note", data: '{"n":1}' })
  const note = await waitFrame(page, { dir: "in", event: "note", channel }, { after })
  await act(page, "react", { channel, messageId: note.frame.id, reaction: "🎉", reactAction: "add" })
  await waitFrame(page, { dir: "in", event: "hotsock.messageReactionAdded", channel }, { after })

  await byTestId(page, "tab-channel").click()
  await byTestId(page, "channel-name").fill(channel)
  await byTestId(page, "api-key").fill(apiKey())
  await byTestId(page, "channel-load").click()
  const view = byTestId(page, "channel-view")
  await page.waitForSelector(`[data-testid=channel-view][data-loaded="${channel}"]`)
  assert.equal(await byTestId(page, "subscription-count").textContent(), "1")
  assert.equal(await byTestId(page, "members").locator(`tr[data-uid="${uid}"] td`).nth(1).textContent(), JSON.stringify({ name: uid }))
  assert.equal(await view.locator('tr[data-key="topic"] td.data').textContent(), '"cards"')
  const message = view.locator(`li.message[data-id="${note.frame.id}"]`)
  assert.equal(await message.getAttribute("data-event"), "note")
  const reaction = message.locator('.reaction[data-reaction="🎉"]')
  assert.equal(await reaction.getAttribute("data-count"), "1")
  assert.equal(await reaction.getAttribute("title"), uid, "who reacted (expandReactions)")

  // Live: a message from the backend shows up without asking.
  await serverPublish({ channel, event: "news", data: { n: 2 }, store: 60 })
  await eventually(async () => assert.equal(await view.locator('li.message[data-event="news"]').count(), 1))
  // And a storage write from the backend.
  await serverPublish({ channel, event: "hotsock.channelStorageSet", key: "round", data: 2 })
  await eventually(async () => assert.equal(await view.locator('tr[data-key="round"] td.data').textContent(), "2"))

  // A wrong key is refused, and the view says so.
  await byTestId(page, "api-key").fill("not-the-key")
  await byTestId(page, "channel-load").click()
  await eventually(async () => assert.match(await byTestId(page, "channel-info").textContent(), /UNAUTHORIZED/))
  assertNoProblemsBut(page, /HTTP 401: .*\/channels\//, /Failed to load resource: .* 401/)
})

test("live backend events of the local stage, filtered by type and channel", async () => {
  const uid = unique("u")
  const prefix = unique("ev")
  const [a, b] = [`${prefix}-a`, `${prefix}-b`]
  const page = await openConsole()
  await byTestId(page, "tab-events").click()
  await page.waitForSelector("[data-testid=events-status][data-streaming=true]")
  await connect(page, await mintToken({ uid, channels: { [`${prefix}-*`]: { subscribe: true } } }))
  await subscribe(page, a)
  await subscribe(page, b)
  await byTestId(page, "tab-events").click()

  const events = () =>
    page.locator("[data-testid=events] > li").evaluateAll((items) =>
      items.map((li) => ({ type: li.dataset.type, channel: li.dataset.channel, hidden: li.hidden, body: JSON.parse(li.dataset.raw) })),
    )
  await eventually(async () => {
    const all = await events()
    assert.ok(all.some((e) => e.type === "hotsock.connected" && e.body.data.uid === uid), "hotsock.connected")
    for (const channel of [a, b]) {
      assert.ok(all.some((e) => e.type === "hotsock.subscribed" && e.channel === channel), `subscribed ${channel}`)
      assert.ok(all.some((e) => e.type === "hotsock.channelUpdated" && e.channel === channel), `channelUpdated ${channel}`)
    }
  })
  await byTestId(page, "event-type").selectOption("hotsock.subscribed")
  await eventually(async () => {
    const shown = (await events()).filter((e) => !e.hidden)
    assert.ok(shown.length >= 2 && shown.every((e) => e.type === "hotsock.subscribed"))
  })
  await byTestId(page, "event-channel").fill(a)
  await eventually(async () => {
    const shown = (await events()).filter((e) => !e.hidden)
    assert.equal(shown.length, 1)
    assert.deepEqual([shown[0].type, shown[0].channel, shown[0].body.data.uid], ["hotsock.subscribed", a, uid])
  })
  // Filtered as they arrive: the unsubscribe from b does not show.
  await act(page, "unsubscribe", { channel: b })
  await byTestId(page, "tab-events").click()
  await eventually(async () => {
    const all = await events()
    assert.ok(all.some((e) => e.type === "hotsock.unsubscribed" && e.channel === b && e.hidden))
  })
  assertNoProblems(page)
})

test("on the local stage one click mints a dev token and leaves a subscribed console ready to publish", async () => {
  const channel = unique("demo")
  const page = await openConsole()
  assert.equal(await byTestId(page, "mint").isVisible(), true)
  const claims = JSON.parse(await byTestId(page, "mint-claims").inputValue())
  const grants = claims.channels["console-demo"]
  assert.ok(grants.subscribe, "the editor starts with a working example")
  await byTestId(page, "mint-claims").fill(JSON.stringify({ ...claims, channels: { [channel]: grants } }, null, 2))

  await byTestId(page, "mint-connect").click()
  await page.waitForSelector("body[data-conn=connected]")
  await waitFrame(page, { dir: "in", event: "hotsock.subscribed", channel })
  assert.equal(await byTestId(page, "action").inputValue(), "send")
  assert.equal(await field(page, "channel").inputValue(), channel)

  const after = await logLength(page)
  await byTestId(page, "action-submit").click()
  const echo = await waitFrame(page, { dir: "in", event: "hello", channel }, { after })
  assert.deepEqual(echo.frame.data, { text: "hi from the console" })
  assertNoProblems(page)
})

test("tokens and the API key stay in the tab: sessionStorage, never the URL or localStorage", async () => {
  const uid = unique("u")
  const channel = unique("room")
  const token = await mintToken(allOn(uid, channel))
  const page = await openConsole()
  await connect(page, token)
  await byTestId(page, "tab-channel").click()
  await byTestId(page, "channel-name").fill(channel)
  await byTestId(page, "api-key").fill(apiKey())
  await byTestId(page, "channel-load").click()
  await page.waitForSelector(`[data-testid=channel-view][data-loaded="${channel}"]`)

  const kept = () =>
    page.evaluate(() => ({
      url: location.href,
      local: { ...localStorage },
      session: { ...sessionStorage },
    }))
  const where = await kept()
  assert.ok(!where.url.includes(token) && !where.url.includes(apiKey()), "not in the URL")
  assert.deepEqual(where.local, {}, "nothing in localStorage")
  assert.equal(where.session["sockhop-console.token"], token)
  assert.equal(where.session["sockhop-console.apiKey"], apiKey())
  assert.match(await byTestId(page, "secret-note").textContent(), /sessionStorage .* never in a URL of this page or in localStorage/)

  // A reload of the tab keeps them and connects again.
  await page.reload()
  await page.waitForSelector("body[data-ready=true]")
  await page.waitForSelector("body[data-conn=connected]")
  assert.equal(await byTestId(page, "api-key").inputValue(), apiKey())

  await byTestId(page, "forget-token").click()
  await byTestId(page, "tab-channel").click()
  await byTestId(page, "forget-key").click()
  assert.deepEqual((await kept()).session, {})
  assert.equal(await byTestId(page, "conn-status").textContent(), "not connected")
  assertNoProblems(page)
})

test("the WebSocket URL comes from the page's wssUrl query, as on a stack, and /console/ redirects", async () => {
  const wss = `${baseUrl.replace(/^http/, "ws")}/v1`
  const page = await openConsole({ url: `${baseUrl}/console/?wssUrl=${encodeURIComponent(wss)}` })
  assert.equal(new URL(page.url()).pathname, "/console")
  assert.equal(await byTestId(page, "wss-url").inputValue(), wss)
  await connect(page, await mintToken({ uid: unique("u") }))
  assertNoProblems(page)

  const odd = await openConsole({ url: `${CONSOLE_URL}?wssUrl=${encodeURIComponent("ws://127.0.0.1:9/elsewhere")}` })
  assert.equal(await byTestId(odd, "wss-url").inputValue(), "ws://127.0.0.1:9/elsewhere")
  // On the local stage the default is the stage's own.
  const plain = await openConsole()
  assert.equal(await byTestId(plain, "wss-url").inputValue(), wss)
  assert.equal(await plain.evaluate(() => document.body.dataset.stage), "local")
})

test("screenshots at desktop and phone widths", async () => {
  for (const [name, viewport] of [
    ["desktop", DESKTOP],
    ["phone", PHONE],
  ]) {
    const channel = unique("demo")
    const page = await openConsole({ viewport })
    if (name === "phone") await byTestId(page, "tab-token").click()
    const claims = JSON.parse(await byTestId(page, "mint-claims").inputValue())
    claims.channels = { [channel]: claims.channels["console-demo"] }
    await byTestId(page, "mint-claims").fill(JSON.stringify(claims, null, 2))
    await byTestId(page, "mint-connect").click()
    await waitFrame(page, { dir: "in", event: "hotsock.subscribed", channel })
    const after = await logLength(page)
    await byTestId(page, "action-submit").click()
    const hello = await waitFrame(page, { dir: "in", event: "hello", channel }, { after })
    await act(page, "react", { channel, messageId: hello.frame.id, reaction: "👍", reactAction: "add" })
    await waitFrame(page, { dir: "in", event: "hotsock.messageReactionAdded", channel }, { after })
    await act(page, "subscribe", { channel: "not-granted" })
    await waitFrame(page, { dir: "in", event: "hotsock.error", channel: "not-granted" }, { after })
    await screenshot(page, `console-${name}-frames`)
    if (name === "phone") {
      await byTestId(page, "tab-token").click()
      await screenshot(page, `console-${name}-token`)
    }
    await byTestId(page, "tab-channel").click()
    await byTestId(page, "channel-name").fill(channel)
    await byTestId(page, "api-key").fill(apiKey())
    await byTestId(page, "channel-load").click()
    await page.waitForSelector(`[data-testid=channel-view][data-loaded="${channel}"]`)
    await screenshot(page, `console-${name}-channel`)
    await byTestId(page, "tab-events").click()
    await screenshot(page, `console-${name}-events`)
    assertNoProblems(page)
  }
})
