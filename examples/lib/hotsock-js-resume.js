// Sockhop's resume extension (docs/protocol.md, "Resume") for @hotsock/hotsock-js,
// which subscribes again after a reconnect but without a position: this wraps the
// WebSocket class it opens, remembers the last position per channel (channels
// subscribed by their real name) and names it in the subscribe frames the library
// sends. Install it before creating the HotsockClient:
//
//   import { installResume } from "./hotsock-js-resume.js"
//   installResume()
//   const client = new HotsockClient(url, { connectTokenFn })
//
// The app then reads history only when hotsock.subscribed says data.recovered is not true.

/** Returns the wrapping class and makes it `globalThis.WebSocket`. */
export function installResume(Base = globalThis.WebSocket) {
  const positions = new Map() // channel → the last position seen on it
  class ResumingWebSocket extends Base {
    constructor(...args) {
      super(...args)
      this.addEventListener("message", ({ data }) => {
        let m
        try {
          m = JSON.parse(data)
        } catch {
          return
        }
        if (m?.event === "hotsock.subscribed") {
          if (m.data?.position) positions.set(m.channel, m.data.position)
        } else if (m?.id && positions.has(m.channel) && !String(m.event).startsWith("hotsock.")) {
          positions.set(m.channel, m.id)
        }
      })
    }

    send(raw) {
      let frame
      try {
        frame = JSON.parse(raw)
      } catch {
        return super.send(raw)
      }
      if (frame?.event === "hotsock.subscribe") {
        const position = positions.get(frame.channel)
        frame.data = { ...frame.data, resume: position ? { position } : true }
        return super.send(JSON.stringify(frame))
      }
      if (frame?.event === "hotsock.unsubscribe") positions.delete(frame.channel)
      return super.send(raw)
    }
  }
  globalThis.WebSocket = ResumingWebSocket
  return ResumingWebSocket
}
