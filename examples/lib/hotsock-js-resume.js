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

/** `connections` and `current`, each once, the last 10 (what a resume may name). */
function ownConnections(connections, current) {
  return [...connections.filter((id) => id !== current), current].slice(-10)
}

/** Returns the wrapping class and makes it `globalThis.WebSocket`. */
export function installResume(Base = globalThis.WebSocket) {
  // channel → the last position seen on it, and the connections that held
  // it since (what they sent without echo they never had, so it is not replayed)
  const positions = new Map()
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
        const held = positions.get(m?.channel)
        if (m?.event === "hotsock.connected") {
          this.connectionId = m.data?.connectionId
        } else if (m?.event === "hotsock.subscribed") {
          const position = m.data?.position
          if (!position) return
          // Recovered with frames to follow: still where it named.
          const own = m.data.recovered === true && held?.position === position ? held.connections : []
          positions.set(m.channel, { position, connections: ownConnections(own, this.connectionId) })
        } else if (held) {
          // A message's id, or another frame's position (storage updates, member events).
          const isMessage = m.id && !String(m.event).startsWith("hotsock.")
          const position = m.position ?? (isMessage ? m.id : null)
          // The connections that held it stay named: a replayed frame may come
          // before what an earlier one published without echo.
          if (position) {
            positions.set(m.channel, { position, connections: ownConnections(held.connections, this.connectionId) })
          }
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
        const held = positions.get(frame.channel)
        const resume = held ? { position: held.position, connectionIds: held.connections } : true
        frame.data = { ...frame.data, resume }
        return super.send(JSON.stringify(frame))
      }
      if (frame?.event === "hotsock.unsubscribe") positions.delete(frame.channel)
      return super.send(raw)
    }
  }
  globalThis.WebSocket = ResumingWebSocket
  return ResumingWebSocket
}
