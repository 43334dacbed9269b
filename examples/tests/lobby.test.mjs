// Browser tests of examples/game-lobby: channel storage as two players and a
// late joiner see it.
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

const LOBBY_URL = `${baseUrl}/examples/game-lobby/`

const browser = sharedBrowser()

const panel = (page, user) => page.getByTestId(`${user}-panel`)

const waitReady = (page) => waitPanelsReady(page, ["ada-panel", "lin-panel"])

/** What one panel shows: the room and the seated players. */
async function lobbyOf(page, user) {
  const p = panel(page, user)
  const players = await p.getByTestId("player").evaluateAll((rows) =>
    rows.map((row) => ({
      uid: row.dataset.uid,
      ready: row.querySelector("[data-testid=player-ready]").dataset.ready === "true",
    })),
  )
  return {
    room: await p.getByTestId("room-name").textContent(),
    mode: await p.getByTestId("room-mode").textContent(),
    count: await p.getByTestId("player-count").textContent(),
    players,
    allReady: await p.getByTestId("all-ready").isVisible(),
  }
}

/** Waits until both panels of `page` show `expected`. */
async function expectLobby(page, expected) {
  for (const user of ["ada", "lin"]) {
    await eventually(async () => assert.deepEqual(await lobbyOf(page, user), expected, user))
  }
}

/** Records a page's Client HTTP API calls and, per WebSocket, the frames it received. */
function watch(page) {
  const seen = { http: [], sockets: [] }
  page.on("request", (request) => {
    const url = new URL(request.url())
    if (url.pathname.startsWith("/connection/")) seen.http.push(url.pathname)
  })
  page.on("websocket", (ws) => {
    const frames = []
    seen.sockets.push(frames)
    ws.on("framereceived", ({ payload }) => {
      try {
        const frame = JSON.parse(String(payload))
        if (frame.event !== "hotsock.keepAlive") frames.push(frame)
      } catch {
        // not JSON: not ours to check here
      }
    })
  })
  return seen
}

test("the host sets the room, players ready up, a late joiner sees it all at once", async (t) => {
  const start = Date.now()
  const page = await newPage(browser())
  const seenByFirst = watch(page)
  await page.goto(LOBBY_URL)
  await waitReady(page)
  const sessionId = hashOf(page)
  assert.ok(sessionId, "the session id is written into the URL hash")
  await expectLobby(page, { room: "Untitled room", mode: "casual", count: "0 / 4", players: [], allReady: false })
  assert.equal(await panel(page, "ada").getByTestId("role").textContent(), "host")
  assert.equal(await panel(page, "lin").getByTestId("settings-form").isVisible(), false, "only the host edits the room")
  t.diagnostic(`loaded, both panels ready: ${since(start)}`)

  // Ada (the host) names the room and picks a mode; both panels show it.
  let mark = Date.now()
  const ada = panel(page, "ada")
  await ada.getByTestId("room-name-input").fill("Friday night")
  await ada.getByTestId("max-players-input").selectOption("4")
  await ada.getByTestId("mode-input").selectOption("ranked")
  await ada.getByTestId("save-settings").click()
  await expectLobby(page, { room: "Friday night", mode: "ranked", count: "0 / 4", players: [], allReady: false })
  t.diagnostic(`host saved the settings, both panels show them: ${since(mark)}`)

  // Lin may not write the settings: the server refuses and nothing changes.
  const refused = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const { client, channel } = window.lobby.lin
        const binding = client.bind("hotsock.error", (m) => {
          binding.unbind()
          resolve(m.error.code)
        })
        channel.setStorage("settings", { name: "Lin's room", maxPlayers: 8, mode: "chaos" })
      }),
  )
  assert.equal(refused, "STORAGE_PERMISSION_DENIED")

  // Both take a seat, Lin readies, then Ada: everyone is ready.
  mark = Date.now()
  await ada.getByTestId("join").click()
  await panel(page, "lin").getByTestId("join").click()
  await expectLobby(page, {
    room: "Friday night",
    mode: "ranked",
    count: "2 / 4",
    players: [
      { uid: "ada", ready: false },
      { uid: "lin", ready: false },
    ],
    allReady: false,
  })
  await panel(page, "lin").getByTestId("ready").click()
  await ada.locator("[data-uid=lin] [data-ready=true]").waitFor()
  await ada.getByTestId("ready").click()
  const everyoneReady = {
    room: "Friday night",
    mode: "ranked",
    count: "2 / 4",
    players: [
      { uid: "ada", ready: true },
      { uid: "lin", ready: true },
    ],
    allReady: true,
  }
  await expectLobby(page, everyoneReady)
  assert.match(await ada.getByTestId("all-ready").textContent(), /ranked game in Friday night/)
  t.diagnostic(`seated and ready on both sides: ${since(mark)}`)
  await screenshot(page, "lobby-1-everyone-ready")

  // A late joiner: a fresh browser profile opening the shared URL. Its panels show
  // the whole lobby from the frames that follow hotsock.subscribed, without any
  // history read or other HTTP call.
  mark = Date.now()
  const late = await newPage(browser())
  const seenByLate = watch(late)
  await late.goto(page.url())
  await waitReady(late)
  assert.equal(hashOf(late), sessionId)
  await expectLobby(late, everyoneReady)
  assert.deepEqual(seenByLate.http, [], "the late joiner made no Client HTTP API call")
  // On each of its two sockets: hotsock.subscribed, then at once the three entries
  // (the settings and two seats).
  assert.equal(seenByLate.sockets.length, 2)
  for (const frames of seenByLate.sockets) {
    const subscribedAt = frames.findIndex((f) => f.event === "hotsock.subscribed")
    assert.ok(subscribedAt >= 0, JSON.stringify(frames))
    const after = frames.slice(subscribedAt + 1, subscribedAt + 4)
    assert.deepEqual(
      after.map((f) => [f.event, f.key]).sort(),
      [
        ["hotsock.channelStorageUpdated", "player.ada"],
        ["hotsock.channelStorageUpdated", "player.lin"],
        ["hotsock.channelStorageUpdated", "settings"],
      ],
      JSON.stringify(frames),
    )
    const settings = after.find((f) => f.key === "settings")
    assert.deepEqual(settings.data, { name: "Friday night", maxPlayers: 4, mode: "ranked" })
    assert.equal(settings.meta.uid, "ada", "meta names the last writer")
  }
  t.diagnostic(`late joiner saw the whole lobby: ${since(mark)}`)
  await screenshot(late, "lobby-2-late-joiner")

  // Lin un-readies and then leaves from the late tab; the first tab follows.
  mark = Date.now()
  await panel(late, "lin").getByTestId("ready").click()
  await expectLobby(page, { ...everyoneReady, players: [{ uid: "ada", ready: true }, { uid: "lin", ready: false }], allReady: false })
  await panel(late, "lin").getByTestId("leave").click()
  const linLeft = { ...everyoneReady, count: "1 / 4", players: [{ uid: "ada", ready: true }], allReady: false }
  await expectLobby(page, linLeft)
  await expectLobby(late, linLeft)
  assert.equal(await panel(page, "lin").getByTestId("join").isVisible(), true, "Lin can sit down again")
  t.diagnostic(`changes from the late tab reached the first: ${since(mark)}`)

  // A reload shows the same lobby, again from storage alone.
  await page.reload()
  await waitReady(page)
  await expectLobby(page, linLeft)
  assert.deepEqual(seenByFirst.http, [], "the lobby never reads history")
  await screenshot(page, "lobby-3-after-reload")

  assertNoProblems(page)
  assertNoProblems(late)
  await page.context().close()
  await late.context().close()
  t.diagnostic(`total: ${since(start)}`)
})

test("a panel whose connection drops resumes: seats cleared meanwhile are gone, renames and leaves replayed", async (t) => {
  const start = Date.now()
  const page = await newPage(browser())
  const seen = watch(page)
  await page.goto(`${LOBBY_URL}#drop-${Date.now().toString(36)}`)
  await waitReady(page)
  await panel(page, "ada").getByTestId("join").click()
  await panel(page, "lin").getByTestId("join").click()
  await eventually(async () => assert.equal((await lobbyOf(page, "ada")).players.length, 2))

  // Hold Ada's reconnect at the token request, so Lin leaves while Ada has no connection.
  let release
  const gate = new Promise((resolve) => (release = resolve))
  await page.route("**/game-lobby", async (route) => {
    await gate
    await route.continue()
  })
  await page.evaluate(() => window.lobby.ada.client._ws.close(4000, "test: simulated network drop"))
  await page.waitForSelector("[data-testid=ada-panel][data-ready=false]")
  await panel(page, "lin").getByTestId("leave").click()
  await eventually(async () => assert.equal((await lobbyOf(page, "lin")).players.length, 1))
  assert.equal((await lobbyOf(page, "ada")).players.length, 2, "Ada is away and still shows Lin")
  // Lin renames herself meanwhile: a member event Ada misses.
  await page.evaluate(() => window.lobby.lin.rename("Lin the Bold"))
  await eventually(async () =>
    assert.ok((await membersOf(page, "lin")).some((m) => m.name === "Lin the Bold"), "Lin sees her new name"),
  )

  const mark = Date.now()
  release()
  await page.waitForSelector("[data-testid=ada-panel][data-ready=true]")
  await eventually(async () => assert.deepEqual((await lobbyOf(page, "ada")).players, [{ uid: "ada", ready: false }]))
  t.diagnostic(`Ada reconnected and shows only what storage holds: ${since(mark)}`)
  // Resumed (the clear came as a replayed update), not caught up from storage.
  assert.equal(await page.evaluate(() => window.lobby.ada.channel.recovered), true)
  // The rename and her own leave came as replayed member events, each with its position.
  await eventually(async () =>
    assert.ok((await membersOf(page, "ada")).some((m) => m.name === "Lin the Bold"), "Ada sees Lin's new name"),
  )
  const resumed = seen.sockets.find((frames) =>
    frames.some((f) => f.event === "hotsock.subscribed" && f.data?.recovered === true),
  )
  assert.ok(resumed, "Ada's new socket was welcomed as recovered")
  const replayed = resumed
    .filter((f) => f.event?.startsWith("hotsock.member"))
    .map((f) => [f.event, f.data.member.uid, typeof f.position])
  // Her leave and Lin's rename raced (in either order), then her return.
  assert.deepEqual(replayed.slice(0, 2).sort(), [
    ["hotsock.memberRemoved", "ada", "string"],
    ["hotsock.memberUpdated", "lin", "string"],
  ])
  assert.deepEqual(replayed.slice(2), [["hotsock.memberAdded", "ada", "string"]])
  await page.unroute("**/game-lobby")
  assertNoProblems(page)
  await page.context().close()
  t.diagnostic(`total: ${since(start)}`)
})

/** "Here now" in one panel: [{uid, name, color}] from the presence members' umd. */
async function membersOf(page, user) {
  return panel(page, user)
    .getByTestId("member")
    .evaluateAll((rows) =>
      rows.map((row) => ({
        uid: row.dataset.uid,
        name: row.querySelector("[data-testid=member-name]").textContent,
        color: getComputedStyle(row.querySelector(".dot")).backgroundColor,
      })),
    )
}

const ADA_COLOR = "rgb(232, 89, 12)"
const LIN_COLOR = "rgb(12, 166, 120)"

test("names and colours come from presence umd, and a rename reaches the other panel at once", async (t) => {
  const start = Date.now()
  const page = await newPage(browser())
  const seen = watch(page)
  await page.goto(`${LOBBY_URL}#rename-${Date.now().toString(36)}`)
  await waitReady(page)
  const here = (adaName) => [
    { uid: "ada", name: adaName, color: ADA_COLOR },
    { uid: "lin", name: "Lin", color: LIN_COLOR },
  ]
  for (const user of ["ada", "lin"]) {
    await eventually(async () => assert.deepEqual(await membersOf(page, user), here("Ada"), user))
  }
  await panel(page, "ada").getByTestId("join").click()
  const linSeesAda = panel(page, "lin").locator("[data-uid=ada] [data-testid=player-name]")
  await eventually(async () => assert.equal(await linSeesAda.textContent(), "Ada"))

  const mark = Date.now()
  const ada = panel(page, "ada")
  await ada.getByTestId("rename-input").fill("Ada the Great")
  await ada.getByTestId("rename").click()
  for (const user of ["lin", "ada"]) {
    await eventually(async () => assert.deepEqual(await membersOf(page, user), here("Ada the Great"), user))
  }
  await eventually(async () => assert.equal(await linSeesAda.textContent(), "Ada the Great"))
  assert.equal(await linSeesAda.evaluate((el) => getComputedStyle(el).color), ADA_COLOR)
  assert.equal(await ada.locator(".panel-header .name").textContent(), "Ada the Great")
  t.diagnostic(`rename shown in both panels: ${since(mark)}`)
  // Both sockets heard it as hotsock.memberUpdated; the rename made no Client HTTP API call.
  const updates = seen.sockets.map((frames) => frames.filter((f) => f.event === "hotsock.memberUpdated"))
  assert.deepEqual(
    updates.map((u) => u.map((f) => f.data.member)),
    [0, 1].map(() => [{ uid: "ada", umd: { name: "Ada the Great", color: "#e8590c", host: true } }]),
  )
  assert.deepEqual(seen.http, [])
  await screenshot(page, "lobby-4-renamed")

  // A name the backend refuses is shown as an error and changes nothing.
  await page.evaluate(() => window.lobby.lin.rename("x".repeat(30)))
  assert.match(await panel(page, "lin").getByTestId("rename-error").textContent(), /Rename failed/)
  assert.deepEqual(await membersOf(page, "ada"), here("Ada the Great"))
  // The refused request is the page's only problem (Chromium also logs it as an error).
  assert.deepEqual(
    page.problems,
    [
      `HTTP 400: ${baseUrl}/game-lobby/rename`,
      "console.error: Failed to load resource: the server responded with a status of 400 (Bad Request)",
    ],
    "only the refused rename",
  )
  await page.context().close()
  t.diagnostic(`total: ${since(start)}`)
})
