// Browser tests of hotsock-lite's channel aliases against the stage: frames carry
// the real channel name, the alias comes only as meta.channelAlias on
// hotsock.subscribed / hotsock.unsubscribed, and a handler bound under the alias
// fires exactly once per message (docs/protocol.md, "Aliases").
import assert from "node:assert/strict"
import { test } from "node:test"
import {
  assertNoProblems,
  baseUrl,
  eventually,
  mintToken,
  newPage,
  serverPublish,
  sharedBrowser,
  since,
} from "./helpers.mjs"

const PAGE_URL = `${baseUrl}/examples/tests/pages/hotsock-lite.html`
// Longer than hotsock-lite's SUBSCRIBE_DELAY_MS (250): by then it has sent every
// hotsock.subscribe it is going to send for what is bound.
const SUBSCRIBE_PASS_MS = 600
// How long we keep watching for a duplicate delivery after the expected ones.
const QUIET_MS = 500

const browser = sharedBrowser()

const unique = (prefix) => `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

async function openPage() {
  const page = await newPage(browser())
  await page.goto(PAGE_URL)
  await page.waitForSelector("body[data-ready=true]")
  return page
}

/** The named client's frame log: {sent, received, calls} (see pages/hotsock-lite.html). */
function logOf(page, name) {
  return page.evaluate((n) => window.clients[n].log, name)
}

const framesOf = (frames, event) => frames.filter((f) => f.event === event)

test("an auto-subscribed channel bound by its alias gets each server publish exactly once", async (t) => {
  const start = Date.now()
  const uid = unique("u")
  const real = `notifications-${uid}`
  const token = await mintToken({
    uid,
    channels: {
      [real]: {
        subscribe: true,
        autoSubscribe: true,
        alias: "notifications",
        messages: { notification: { publish: true } },
      },
    },
  })
  const page = await openPage()
  // Bound under the alias before the connection is up, as an app would at load.
  await page.evaluate((token) => {
    window.startClient("me", token)
    const { client, log } = window.clients.me
    client.channels("notifications").bind("notification", (m) => log.calls.push(m))
  }, token)

  const subscribed = await eventually(async () => {
    const frames = framesOf((await logOf(page, "me")).received, "hotsock.subscribed")
    assert.equal(frames.length, 1, "one hotsock.subscribed (the auto-subscription)")
    return frames[0]
  })
  assert.equal(subscribed.channel, real, "hotsock.subscribed names the real channel")
  assert.equal(subscribed.meta?.channelAlias, "notifications", "the alias is in meta.channelAlias")
  assert.equal(subscribed.data?.autoSubscribed, true, "data.autoSubscribed")
  t.diagnostic(`connected and auto-subscribed: ${since(start)}`)

  await page.waitForTimeout(SUBSCRIBE_PASS_MS)

  const mark = Date.now()
  await serverPublish({ channel: real, event: "notification", data: { n: 1 } })
  await serverPublish({ channel: real, event: "notification", data: { n: 2 } })
  await eventually(async () => assert.equal((await logOf(page, "me")).calls.length, 2))
  t.diagnostic(`two server publishes reached the alias binding: ${since(mark)}`)
  await page.waitForTimeout(QUIET_MS)

  const log = await logOf(page, "me")
  assert.deepEqual(
    log.calls.map((m) => [m.event, m.channel, m.data]),
    [
      ["notification", real, { n: 1 }],
      ["notification", real, { n: 2 }],
    ],
    "the handler fired once per message, each carrying the real channel name",
  )
  assert.equal(framesOf(log.received, "notification").length, 2, "one frame per publish")
  assert.deepEqual(framesOf(log.sent, "hotsock.subscribe"), [], "no hotsock.subscribe for an auto-subscribed channel")
  assert.deepEqual(framesOf(log.received, "hotsock.error"), [])
  const channel = await page.evaluate(() => {
    const { client } = window.clients.me
    const ch = client.channels("notifications")
    return {
      state: ch.state,
      autoSubscribed: ch.autoSubscribed,
      realName: ch.realName,
      aliases: client.channelAliasToReal,
    }
  })
  assert.deepEqual(channel, {
    state: "subscribed",
    autoSubscribed: true,
    realName: real,
    aliases: { notifications: real },
  })

  // Removing the last binding leaves the server's subscription alone.
  await page.evaluate(() => window.clients.me.client.channels("notifications").unbind())
  await page.waitForTimeout(QUIET_MS)
  assert.deepEqual(framesOf((await logOf(page, "me")).sent, "hotsock.unsubscribe"), [])

  await page.evaluate(() => window.clients.me.client.terminate())
  assertNoProblems(page)
  await page.context().close()
  t.diagnostic(`total: ${since(start)}`)
})

test("a channel subscribed by its alias gets each client publish exactly once and unsubscribes by the real name", async (t) => {
  const start = Date.now()
  const real = unique("room")
  const chat = { publish: true, echo: true }
  const [meToken, otherToken] = await Promise.all([
    mintToken({ uid: "me", channels: { [real]: { subscribe: true, alias: "room", messages: { chat } } } }),
    mintToken({ uid: "other", channels: { [real]: { subscribe: true, messages: { chat } } } }),
  ])
  const page = await openPage()
  await page.evaluate(
    ({ meToken, otherToken, real }) => {
      window.startClient("me", meToken)
      window.startClient("other", otherToken)
      const { me, other } = window.clients
      me.client.channels("room").bind("chat", (m) => me.log.calls.push(m))
      other.client.channels(real).bind("chat", (m) => other.log.calls.push(m))
    },
    { meToken, otherToken, real },
  )
  // Polled from here (not awaited in the page), so a subscription that never
  // settles fails the test instead of hanging it.
  await eventually(async () => {
    const states = await page.evaluate(
      (real) => [
        window.clients.me.client.channels("room").state,
        window.clients.other.client.channels(real).state,
      ],
      real,
    )
    assert.deepEqual(states, ["subscribed", "subscribed"])
  })
  t.diagnostic(`both subscribed: ${since(start)}`)

  let log = await logOf(page, "me")
  assert.deepEqual(framesOf(log.sent, "hotsock.subscribe"), [{ event: "hotsock.subscribe", channel: "room", data: { resume: true } }])
  const subscribed = framesOf(log.received, "hotsock.subscribed")
  assert.equal(subscribed.length, 1)
  assert.equal(subscribed[0].channel, real, "hotsock.subscribed names the real channel")
  assert.equal(subscribed[0].meta?.channelAlias, "room")
  assert.notEqual(subscribed[0].data?.autoSubscribed, true)

  // One message published by the alias (echoed back), one by another client by the real name.
  const mark = Date.now()
  await page.evaluate(async () => {
    await window.clients.me.client.channels("room").sendMessage("chat", { data: { text: "by alias" } })
  })
  await eventually(async () => assert.equal((await logOf(page, "me")).calls.length, 1))
  await page.evaluate(async (real) => {
    await window.clients.other.client.channels(real).sendMessage("chat", { data: { text: "by real name" } })
  }, real)
  await eventually(async () => assert.equal((await logOf(page, "me")).calls.length, 2))
  t.diagnostic(`two client publishes reached the alias binding: ${since(mark)}`)
  await page.waitForTimeout(QUIET_MS)

  log = await logOf(page, "me")
  assert.deepEqual(
    log.calls.map((m) => [m.channel, m.data.text, m.meta?.uid]),
    [
      [real, "by alias", "me"],
      [real, "by real name", "other"],
    ],
    "the handler fired once per message, each carrying the real channel name",
  )
  assert.equal(framesOf(log.received, "chat").length, 2, "one frame per publish")
  assert.equal((await logOf(page, "other")).calls.length, 2, "the other client got both too")

  // The last binding gone: unsubscribe by the real name; the answer names the alias in meta.
  await page.evaluate(() => window.clients.me.client.channels("room").unbind())
  const unsubscribed = await eventually(async () => {
    const frames = framesOf((await logOf(page, "me")).received, "hotsock.unsubscribed")
    assert.equal(frames.length, 1)
    return frames[0]
  })
  log = await logOf(page, "me")
  assert.deepEqual(framesOf(log.sent, "hotsock.unsubscribe"), [{ event: "hotsock.unsubscribe", channel: real }])
  assert.equal(unsubscribed.channel, real)
  assert.equal(unsubscribed.meta?.channelAlias, "room")
  assert.deepEqual(framesOf(log.received, "hotsock.error"), [])

  await page.evaluate(() => {
    for (const { client } of Object.values(window.clients)) client.terminate()
  })
  assertNoProblems(page)
  await page.context().close()
  t.diagnostic(`total: ${since(start)}`)
})
