// Shared helpers for the example apps' browser tests (node --test + playwright-core
// driving Debian's Chromium; no Playwright browser download).

import assert from "node:assert/strict"
import { mkdirSync } from "node:fs"
import { after, before } from "node:test"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { chromium } from "playwright-core"

const here = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(here, "../..")
export const screenshotDir = path.join(repoRoot, "artifacts", "screenshots")

export const baseUrl = (() => {
  const url = process.env.SOCKHOP_URL
  if (!url) {
    throw new Error(
      "SOCKHOP_URL is not set: start a stage (cargo run -p sockhop-local -- --port 4000) " +
        "and run SOCKHOP_URL=http://127.0.0.1:4000 node --test examples/tests/, " +
        "or use scripts/browser-test.sh",
    )
  }
  return url.replace(/\/+$/, "")
})()

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium"

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  })
}

/**
 * A new browser context (own localStorage, like a separate browser profile) and a
 * page in it that records page errors and console errors in `page.problems`.
 */
export async function newPage(browser, context) {
  const ctx = context ?? (await browser.newContext({ viewport: { width: 1280, height: 800 } }))
  const page = await ctx.newPage()
  page.problems = []
  page.on("pageerror", (err) => page.problems.push(`pageerror: ${err.message}`))
  page.on("console", (msg) => {
    if (msg.type() === "error") page.problems.push(`console.error: ${msg.text()}`)
  })
  page.on("response", (response) => {
    if (response.status() >= 400) page.problems.push(`HTTP ${response.status()}: ${response.url()}`)
  })
  page.setDefaultTimeout(15_000)
  return page
}

/** Retries `fn` (an async assertion) until it passes or `timeout` ms have passed. */
export async function eventually(fn, { timeout = 10_000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, interval))
    }
  }
}

/** Saves a full-page screenshot as artifacts/screenshots/<name>.png. */
export async function screenshot(page, name) {
  mkdirSync(screenshotDir, { recursive: true })
  const file = path.join(screenshotDir, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}

/** The session id in the page's URL hash. */
export function hashOf(page) {
  return decodeURIComponent(new URL(page.url()).hash.replace(/^#/, ""))
}

/** Milliseconds since `start`, for the timing log. */
export function since(start) {
  return `${((Date.now() - start) / 1000).toFixed(2)} s`
}

/** One Chromium for the calling test file: launched before its tests, closed after. */
export function sharedBrowser() {
  let browser
  before(async () => {
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
  })
  return () => browser
}

/** Waits until each panel (by data-testid) says data-ready=true. */
export async function waitPanelsReady(page, testIds) {
  for (const id of testIds) await page.waitForSelector(`[data-testid=${id}][data-ready=true]`)
}

/** Fails on anything newPage() recorded in page.problems (errors, failed requests). */
export function assertNoProblems(page) {
  assert.deepEqual(page.problems, [], "the page logged errors")
}

/** A connect token from the stage's dev endpoint (`POST /dev/token`) for `claims`. */
export async function mintToken(claims) {
  const response = await fetch(`${baseUrl}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(claims),
  })
  const body = await response.json()
  assert.equal(response.status, 200, `POST /dev/token: ${JSON.stringify(body)}`)
  return body.token
}

/**
 * The stage's server API key: scripts/browser-test.sh starts the stage with
 * HTTP_API_KEY_1 and exports the same value as SOCKHOP_API_KEY.
 */
export function apiKey() {
  const key = process.env.SOCKHOP_API_KEY
  if (!key) {
    throw new Error(
      "SOCKHOP_API_KEY is not set: start the stage with HTTP_API_KEY_1=<key> and run the " +
        "tests with SOCKHOP_API_KEY=<key>, or use scripts/browser-test.sh",
    )
  }
  return key
}

/** Publishes as the application's backend (`POST /publish` with the API key). */
export async function serverPublish(message) {
  const response = await fetch(`${baseUrl}/publish`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey()}` },
    body: JSON.stringify(message),
  })
  const text = await response.text()
  assert.ok(response.ok, `POST /publish: HTTP ${response.status} ${text}`)
  return text ? JSON.parse(text) : null
}
