// Browser tests of examples/real-time-chat: what Jim and Pam see.
import assert from "node:assert/strict"
import { test } from "node:test"
import {
  assertNoProblems,
  baseUrl,
  eventually,
  hashOf,
  newPage,
  screenshot,
  sharedBrowser,
  since,
  waitPanelsReady,
} from "./helpers.mjs"

const CHAT_URL = `${baseUrl}/examples/real-time-chat/`
const REACTIONS = ["❤️", "👍", "👎", "😂"]

const browser = sharedBrowser()

const win = (page, user) => page.getByTestId(`${user}-window`)

const waitReady = (page) => waitPanelsReady(page, ["jim-window", "pam-window"])

/** What one window shows: every message with its side, text, time and reactions. */
function messagesOf(page, user) {
  return win(page, user)
    .getByTestId("message")
    .evaluateAll((items) =>
      items.map((li) => {
        const reactions = {}
        const active = []
        for (const b of li.querySelectorAll("[data-testid=reaction]")) {
          const shown = b.querySelector("[data-testid=reaction-count]").textContent
          const count = Number(b.dataset.count)
          if (shown !== (count ? String(count) : "")) throw new Error(`count shown ${shown} ≠ ${count}`)
          if (count) reactions[b.dataset.reaction] = count
          if (b.dataset.active === "true") active.push(b.dataset.reaction)
        }
        return {
          side: li.dataset.side,
          text: li.querySelector("[data-testid=message-text]").textContent,
          time: li.querySelector("[data-testid=message-time]").textContent,
          reactions,
          active,
        }
      }),
    )
}

/** The messages without their times (for comparing windows and reloads). */
async function viewOf(page, user) {
  return (await messagesOf(page, user)).map(({ time, ...rest }) => rest)
}

function message(page, user, text) {
  return win(page, user)
    .getByTestId("message")
    .filter({ has: page.getByTestId("message-text").getByText(text, { exact: true }) })
}

function reactionButton(page, user, text, reaction) {
  return message(page, user, text).locator(`[data-testid=reaction][data-reaction="${reaction}"]`)
}

async function expectReactions(page, user, text, reactions, active) {
  await eventually(async () => {
    const all = await messagesOf(page, user)
    const m = all.find((x) => x.text === text)
    assert.ok(m, `${user} sees "${text}"`)
    assert.deepEqual(m.reactions, reactions, `${user}'s counts on "${text}"`)
    assert.deepEqual(m.active, active, `${user}'s own reaction on "${text}"`)
  })
}

async function send(page, user, text) {
  const input = win(page, user).getByTestId("message-input")
  await input.fill(text)
  await input.press("Enter")
}

/** Horizontal position of a message inside its list: "left" or "right". */
async function alignment(page, user, text) {
  const list = await win(page, user).getByTestId("messages").boundingBox()
  const box = await message(page, user, text).locator(".bubble").boundingBox()
  const leftGap = box.x - list.x
  const rightGap = list.x + list.width - (box.x + box.width)
  if (leftGap < 40 && rightGap > 100) return "left"
  if (rightGap < 40 && leftGap > 100) return "right"
  return `unclear (left gap ${leftGap}, right gap ${rightGap})`
}

function hhmmNow(offsetMs = 0) {
  const d = new Date(Date.now() + offsetMs)
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`
}

test("Jim and Pam chat: sides, typing indicator, reactions, history after reload and in a new tab", async (t) => {
  const start = Date.now()
  const page = await newPage(browser())
  await page.goto(CHAT_URL)
  await waitReady(page)
  const sessionId = hashOf(page)
  assert.ok(sessionId, "the session id is written into the URL hash")
  assert.equal(await page.getByTestId("session-id").textContent(), sessionId)
  t.diagnostic(`loaded, both windows ready: ${since(start)}`)

  // --- typing indicator: appears on Pam's side while Jim types, gone ~2 s later.
  const pamTyping = win(page, "pam").getByTestId("typing-indicator")
  const jimTyping = win(page, "jim").getByTestId("typing-indicator")
  assert.equal(await pamTyping.isVisible(), false)
  let mark = Date.now()
  await win(page, "jim").getByTestId("message-input").pressSequentially("Hello", { delay: 40 })
  await pamTyping.waitFor({ state: "visible" })
  const shownAt = Date.now()
  assert.equal(await pamTyping.textContent(), "Jim is typing…")
  assert.equal(await jimTyping.isVisible(), false, "Jim does not see his own typing")
  t.diagnostic(`typing indicator shown on Pam's side: ${shownAt - mark} ms after Jim started typing`)
  await screenshot(page, "chat-1-typing")
  await pamTyping.waitFor({ state: "hidden", timeout: 5000 })
  const shownFor = Date.now() - shownAt
  t.diagnostic(`typing indicator hidden after ${shownFor} ms without typing`)
  assert.ok(shownFor >= 1200 && shownFor <= 3500, `shown for ${shownFor} ms, expected about 2 s`)

  // --- Jim sends: right-aligned for Jim, left-aligned for Pam.
  mark = Date.now()
  await win(page, "jim").getByTestId("message-input").pressSequentially(" Pam!", { delay: 20 })
  await pamTyping.waitFor({ state: "visible" })
  await win(page, "jim").getByTestId("send-button").click()
  await message(page, "pam", "Hello Pam!").waitFor()
  t.diagnostic(`Jim's message reached Pam: ${since(mark)}`)
  // The indicator goes as soon as Jim's message arrives, not 2 s later.
  await pamTyping.waitFor({ state: "hidden", timeout: 700 })
  await message(page, "jim", "Hello Pam!").waitFor()
  assert.equal(await win(page, "jim").getByTestId("message-input").inputValue(), "")
  assert.equal(await message(page, "jim", "Hello Pam!").getAttribute("data-side"), "mine")
  assert.equal(await message(page, "pam", "Hello Pam!").getAttribute("data-side"), "theirs")
  assert.equal(await alignment(page, "jim", "Hello Pam!"), "right")
  assert.equal(await alignment(page, "pam", "Hello Pam!"), "left")
  assert.equal(await message(page, "pam", "Hello Pam!").getByTestId("message-sender").textContent(), "Jim")
  const [first] = await messagesOf(page, "pam")
  assert.match(first.time, /^\d\d:\d\d$/)
  assert.ok([hhmmNow(), hhmmNow(-60_000)].includes(first.time), `time ${first.time} is now`)

  await send(page, "pam", "Hi Jim")
  await message(page, "jim", "Hi Jim").waitFor()
  assert.equal(await alignment(page, "jim", "Hi Jim"), "left")
  assert.equal(await alignment(page, "pam", "Hi Jim"), "right")

  // --- reactions: Pam 👍, then ❤️ instead, then Jim ❤️ too.
  mark = Date.now()
  await reactionButton(page, "pam", "Hello Pam!", "👍").click()
  await expectReactions(page, "pam", "Hello Pam!", { "👍": 1 }, ["👍"])
  await expectReactions(page, "jim", "Hello Pam!", { "👍": 1 }, [])
  t.diagnostic(`Pam's 👍 counted on both sides: ${since(mark)}`)

  mark = Date.now()
  await reactionButton(page, "pam", "Hello Pam!", "❤️").click()
  await expectReactions(page, "pam", "Hello Pam!", { "❤️": 1 }, ["❤️"])
  await expectReactions(page, "jim", "Hello Pam!", { "❤️": 1 }, [])
  t.diagnostic(`Pam switched to ❤️ (👍 removed) on both sides: ${since(mark)}`)

  await reactionButton(page, "jim", "Hello Pam!", "❤️").click()
  await expectReactions(page, "jim", "Hello Pam!", { "❤️": 2 }, ["❤️"])
  await expectReactions(page, "pam", "Hello Pam!", { "❤️": 2 }, ["❤️"])
  await expectReactions(page, "pam", "Hi Jim", {}, [])
  await screenshot(page, "chat-2-reactions")

  const expected = {
    jim: [
      { side: "mine", text: "Hello Pam!", reactions: { "❤️": 2 }, active: ["❤️"] },
      { side: "theirs", text: "Hi Jim", reactions: {}, active: [] },
    ],
    pam: [
      { side: "theirs", text: "Hello Pam!", reactions: { "❤️": 2 }, active: ["❤️"] },
      { side: "mine", text: "Hi Jim", reactions: {}, active: [] },
    ],
  }
  const times = (await messagesOf(page, "jim")).map((m) => m.time)

  // --- reload: history with reaction counts and each user's own reaction.
  mark = Date.now()
  await page.reload()
  await waitReady(page)
  assert.equal(hashOf(page), sessionId)
  for (const user of ["jim", "pam"]) assert.deepEqual(await viewOf(page, user), expected[user])
  assert.deepEqual((await messagesOf(page, "pam")).map((m) => m.time), times, "times from the ULIDs")
  assert.equal(await alignment(page, "jim", "Hello Pam!"), "right")
  assert.equal(await alignment(page, "pam", "Hello Pam!"), "left")
  t.diagnostic(`reload rebuilt messages and reactions from history: ${since(mark)}`)
  await screenshot(page, "chat-3-after-reload")

  // --- a third tab with the same URL (fresh profile): the same history.
  mark = Date.now()
  const other = await newPage(browser())
  await other.goto(page.url())
  await waitReady(other)
  assert.equal(hashOf(other), sessionId)
  for (const user of ["jim", "pam"]) assert.deepEqual(await viewOf(other, user), expected[user])
  t.diagnostic(`third tab shows the same history: ${since(mark)}`)

  // Clicking your active reaction removes it, everywhere.
  mark = Date.now()
  await reactionButton(other, "pam", "Hello Pam!", "❤️").click()
  await expectReactions(other, "pam", "Hello Pam!", { "❤️": 1 }, [])
  await expectReactions(page, "pam", "Hello Pam!", { "❤️": 1 }, [])
  await expectReactions(page, "jim", "Hello Pam!", { "❤️": 1 }, ["❤️"])
  t.diagnostic(`Pam's ❤️ removed from tab 3, seen in tab 1: ${since(mark)}`)

  // And a message from the third tab arrives in the first.
  await send(other, "jim", "Sent from tab 3")
  await message(page, "pam", "Sent from tab 3").waitFor()
  assert.equal(await message(page, "jim", "Sent from tab 3").getAttribute("data-side"), "mine")
  await screenshot(other, "chat-4-third-tab")

  assertNoProblems(page)
  assertNoProblems(other)
  await page.context().close()
  await other.context().close()
  t.diagnostic(`total: ${since(start)}`)
})

test("listReactions and listMessages agree with what the windows show", async (t) => {
  const page = await newPage(browser())
  await page.goto(`${CHAT_URL}#api-${Date.now().toString(36)}`)
  await waitReady(page)
  await send(page, "jim", "React to me")
  await message(page, "pam", "React to me").waitFor()
  await reactionButton(page, "pam", "React to me", "😂").click()
  await reactionButton(page, "jim", "React to me", "😂").click()
  await expectReactions(page, "jim", "React to me", { "😂": 2 }, ["😂"])
  await reactionButton(page, "jim", "React to me", "👎").click()
  await expectReactions(page, "pam", "React to me", { "😂": 1, "👎": 1 }, ["😂"])

  const api = await page.evaluate(async () => {
    const { client, channelName } = window.chat.pam
    const [m] = await client.listAllMessages(channelName, { expandReactions: true })
    const plain = await client.listMessages(channelName)
    const reactions = await client.listReactions(channelName, m.id)
    return { expanded: m.reactions, plain: plain.messages[0].reactions, reactions }
  })
  assert.deepEqual(api.plain, { "😂": { count: 1 }, "👎": { count: 1 } })
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(api.expanded).map(([r, v]) => [r, v.items.map((i) => i.uid)]),
    ),
    { "😂": ["pam"], "👎": ["jim"] },
  )
  assert.deepEqual(
    api.reactions.map((r) => `${r.reaction}:${r.uid}`).sort(),
    ["👎:jim", "😂:pam"].sort(),
  )
  for (const r of REACTIONS) {
    // Every reaction button exists under the message, in both windows.
    await reactionButton(page, "jim", "React to me", r).waitFor()
    await reactionButton(page, "pam", "React to me", r).waitFor()
  }
  t.diagnostic(`listReactions: ${JSON.stringify(api.reactions)}`)
  assertNoProblems(page)
  await page.context().close()
})
