// Browser tests of examples/collaborative-todo: what Alice and Bob see.
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

const TODO_URL = `${baseUrl}/examples/collaborative-todo/`

const browser = sharedBrowser()

const panel = (page, user) => page.getByTestId(`${user}-panel`)

const waitReady = (page) => waitPanelsReady(page, ["alice-panel", "bob-panel"])

/** What a panel shows: [{text, done}] in display order. */
function itemsOf(page, user) {
  return panel(page, user)
    .getByTestId("todo-item")
    .evaluateAll((rows) =>
      rows.map((row) => ({
        text: row.querySelector("[data-testid=item-text]").textContent,
        done: row.querySelector("[data-testid=toggle]").checked,
      })),
    )
}

async function expectItems(page, user, expected, options) {
  await eventually(async () => assert.deepEqual(await itemsOf(page, user), expected), options)
}

async function expectBoth(page, expected) {
  await expectItems(page, "alice", expected)
  await expectItems(page, "bob", expected)
}

async function addItem(page, user, text) {
  const p = panel(page, user)
  await p.getByTestId("new-item-input").fill(text)
  await p.getByTestId("add-button").click()
  // Like a person: wait until it is on the list before doing the next thing.
  await p.getByTestId("item-text").getByText(text, { exact: true }).waitFor()
}

function itemRow(page, user, text) {
  return panel(page, user)
    .getByTestId("todo-item")
    .filter({ has: page.getByTestId("item-text").getByText(text, { exact: true }) })
}

test("Alice and Bob edit one list; reload and a second tab rebuild it from history", async (t) => {
  const start = Date.now()
  const page = await newPage(browser())
  await page.goto(TODO_URL)
  await waitReady(page)
  const sessionId = hashOf(page)
  assert.ok(sessionId, "the session id is written into the URL hash")
  assert.equal(await page.getByTestId("session-id").textContent(), sessionId)
  await expectBoth(page, [])
  t.diagnostic(`loaded, both panels ready: ${since(start)}`)

  // Alice adds two items; Bob sees them.
  let mark = Date.now()
  await addItem(page, "alice", "Buy milk")
  await addItem(page, "alice", "Write tests")
  await expectBoth(page, [
    { text: "Buy milk", done: false },
    { text: "Write tests", done: false },
  ])
  const addedBy = await panel(page, "bob").getByTestId("added-by").allTextContents()
  assert.deepEqual(addedBy, ["Alice", "Alice"])
  t.diagnostic(`Alice added two items, Bob sees them: ${since(mark)}`)
  await screenshot(page, "todo-1-alice-added")

  // Bob checks one; Alice sees it checked.
  mark = Date.now()
  await itemRow(page, "bob", "Buy milk").getByTestId("toggle").click()
  await expectItems(page, "alice", [
    { text: "Buy milk", done: true },
    { text: "Write tests", done: false },
  ])
  await expectItems(page, "bob", [
    { text: "Buy milk", done: true },
    { text: "Write tests", done: false },
  ])
  t.diagnostic(`Bob toggled, Alice sees it: ${since(mark)}`)

  // Alice deletes one; it is gone on both sides.
  mark = Date.now()
  await itemRow(page, "alice", "Write tests").getByTestId("delete").click()
  await expectBoth(page, [{ text: "Buy milk", done: true }])
  t.diagnostic(`Alice deleted, gone on both sides: ${since(mark)}`)

  // A few more changes so the replay has something to get right.
  await addItem(page, "bob", "Ship it")
  await itemRow(page, "alice", "Buy milk").getByTestId("toggle").click()
  await expectBoth(page, [
    { text: "Buy milk", done: false },
    { text: "Ship it", done: false },
  ])
  await itemRow(page, "bob", "Buy milk").getByTestId("toggle").click()
  const finalState = [
    { text: "Buy milk", done: true },
    { text: "Ship it", done: false },
  ]
  await expectBoth(page, finalState)
  await screenshot(page, "todo-2-before-reload")

  // Reload: the list is rebuilt from stored history, identically.
  mark = Date.now()
  await page.reload()
  await waitReady(page)
  assert.equal(hashOf(page), sessionId, "the reload stays in the same session")
  await expectBoth(page, finalState)
  t.diagnostic(`reload rebuilt the list from history: ${since(mark)}`)
  await screenshot(page, "todo-3-after-reload")

  // A third tab with the same URL, in a fresh browser profile (no localStorage):
  // the hash alone joins the session.
  mark = Date.now()
  const other = await newPage(browser())
  await other.goto(page.url())
  await waitReady(other)
  assert.equal(hashOf(other), sessionId)
  await expectBoth(other, finalState)
  t.diagnostic(`third tab shows the same list: ${since(mark)}`)

  // An action in the third tab reaches the first.
  mark = Date.now()
  await addItem(other, "bob", "Sent from tab 3")
  await itemRow(other, "alice", "Ship it").getByTestId("toggle").click()
  await itemRow(other, "alice", "Ship it").and(other.locator("[data-done=true]")).waitFor()
  const withTab3 = [
    { text: "Buy milk", done: true },
    { text: "Ship it", done: true },
    { text: "Sent from tab 3", done: false },
  ]
  await expectBoth(page, withTab3)
  await expectBoth(other, withTab3)
  t.diagnostic(`tab 3's changes reached tab 1: ${since(mark)}`)
  await screenshot(other, "todo-4-third-tab")

  // Without a hash, the same browser profile goes back to its last session.
  const again = await page.context().newPage()
  await again.goto(TODO_URL)
  await waitReady(again)
  assert.equal(hashOf(again), sessionId, "localStorage remembers the session")
  await expectBoth(again, withTab3)

  assertNoProblems(page)
  assertNoProblems(other)
  await page.context().close()
  await other.context().close()
  t.diagnostic(`total: ${since(start)}`)
})

test("history longer than one listMessages page (100) is replayed completely", async (t) => {
  const start = Date.now()
  const page = await newPage(browser())
  // A fresh session, not the one the first test left in localStorage.
  await page.goto(`${TODO_URL}#paging-${Date.now().toString(36)}`)
  await waitReady(page)
  const total = 101
  const deleted = 5
  // 101 add-item and 5 delete-item events: 106 stored messages, two pages.
  // Published from both connections, as Alice and Bob would.
  await page.evaluate(async (total) => {
    for (let i = 0; i < total; i++) {
      const { channel } = i % 2 ? window.todo.bob : window.todo.alice
      await channel.sendMessage("add-item", {
        data: { id: `bulk-${String(i).padStart(3, "0")}`, text: `Item ${i}` },
      })
    }
  }, total)
  await eventually(
    async () => assert.equal(await panel(page, "bob").getByTestId("todo-item").count(), total),
    { timeout: 60_000, interval: 250 },
  )
  await page.evaluate(async (deleted) => {
    const { channel } = window.todo.bob
    for (let i = 0; i < deleted; i++) {
      await channel.sendMessage("delete-item", { data: { id: `bulk-${String(i).padStart(3, "0")}` } })
    }
  }, deleted)
  await eventually(async () =>
    assert.equal(await panel(page, "alice").getByTestId("todo-item").count(), total - deleted),
  )
  const live = await itemsOf(page, "alice")
  t.diagnostic(`published ${total + deleted} events: ${since(start)}`)

  const mark = Date.now()
  await page.reload()
  await waitReady(page)
  const replayed = await itemsOf(page, "alice")
  assert.equal(replayed.length, total - deleted)
  assert.deepEqual(replayed, live)
  assert.deepEqual(await itemsOf(page, "bob"), live)
  const expectedTexts = Array.from({ length: total - deleted }, (_, i) => `Item ${i + deleted}`)
  assert.deepEqual(replayed.map((i) => i.text).sort(), expectedTexts.sort())
  t.diagnostic(`reload replayed ${total + deleted} events from history: ${since(mark)}`)
  await screenshot(page, "todo-5-long-history")
  assertNoProblems(page)
  await page.context().close()
})

test("a panel whose connection drops reconnects and resumes where it left off, without reading history", async (t) => {
  const start = Date.now()
  const page = await newPage(browser())
  await page.goto(`${TODO_URL}#reconnect-${Date.now().toString(36)}`)
  await waitReady(page)
  await addItem(page, "alice", "Before the drop")
  await expectItems(page, "bob", [{ text: "Before the drop", done: false }])

  // Hold Alice's reconnect at the token request, so Bob's next change is published
  // while she has no connection at all.
  let release
  const gate = new Promise((resolve) => (release = resolve))
  await page.route("**/collaborative-todo", async (route) => {
    await gate
    await route.continue()
  })
  const oldConnectionId = await page.evaluate(() => {
    const { client } = window.todo.alice
    const id = client.connectionId
    client._ws.close(4000, "test: simulated network drop")
    return id
  })
  await page.waitForSelector("[data-testid=alice-panel][data-ready=false]")
  assert.equal(await panel(page, "alice").getByTestId("status").textContent(), "reconnecting…")

  await addItem(page, "bob", "While Alice was away")
  assert.deepEqual(await itemsOf(page, "alice"), [{ text: "Before the drop", done: false }])
  await screenshot(page, "todo-6-disconnected")

  // The gap comes back as frames (Sockhop's resume), not from listMessages.
  const historyReads = []
  page.on("request", (request) => {
    if (request.url().includes("listMessages")) historyReads.push(request.url())
  })
  const mark = Date.now()
  release()
  await page.waitForSelector("[data-testid=alice-panel][data-ready=true]")
  await expectItems(page, "alice", [
    { text: "Before the drop", done: false },
    { text: "While Alice was away", done: false },
  ])
  t.diagnostic(`Alice reconnected and resumed: ${since(mark)}`)
  const resumed = await page.evaluate(() => ({
    connectionId: window.todo.alice.client.connectionId,
    recovered: window.todo.alice.channel.recovered,
  }))
  assert.ok(resumed.connectionId && resumed.connectionId !== oldConnectionId, "a new connection")
  assert.equal(resumed.recovered, true, "the subscription resumed: hotsock.subscribed said recovered")
  assert.deepEqual(historyReads, [], "nothing was read back from history")

  // The channel is live again in both directions.
  await addItem(page, "alice", "After the reconnect")
  await itemRow(page, "bob", "While Alice was away").getByTestId("toggle").click()
  const expected = [
    { text: "Before the drop", done: false },
    { text: "While Alice was away", done: true },
    { text: "After the reconnect", done: false },
  ]
  await expectBoth(page, expected)
  await page.unroute("**/collaborative-todo")
  assertNoProblems(page)
  await page.context().close()
  t.diagnostic(`total: ${since(start)}`)
})
