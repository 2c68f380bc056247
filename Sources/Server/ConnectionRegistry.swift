import Metrics
import NIOCore
import Synchronization

/// What a connection is doing, for choosing which one to close when there are too many.
enum ConnectionPhase: Int, Sendable, Comparable {
    /// Between requests (or not yet sent a byte): the first to go.
    case idle
    /// Sending a request (headers or body): closed only when no idle connection is left.
    case reading
    /// Its request is read and being answered: never closed to make room.
    case answering

    static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// The open connections and a cap on their number (`--max-connections`).
///
/// At the cap a new connection takes the place of the one idle the longest, or failing that of the
/// one that has been sending its request the longest, as nginx reuses idle keep-alive connections
/// when it runs out; only when every connection is being answered is the new one closed. So a
/// crowd of idle or half-sent connections cannot lock out a client with a real request (a health
/// check, say), and the process never runs out of file descriptors for them.
final class ConnectionRegistry: Sendable {
    private struct Entry {
        let channel: any Channel
        var phase: ConnectionPhase
        /// When the phase began, in admissions and phase changes counted (smaller is earlier).
        var since: UInt64
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var tick: UInt64 = 0
        /// Fewest and most connections open since the last burst (see `burst`).
        var low = 0
        var peak = 0
        /// Whether connections have risen by `burstConnections` since `low`: a crowd whose read
        /// buffers and request parts are worth giving back to the system once it has gone (see
        /// `HeapTrimmer`).
        var burst = false
    }

    /// Connections more than usual that make a burst.
    static let burstConnections = 32

    /// Most connections open at once.
    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    /// Connections open now.
    var count: Int { state.withLock { $0.entries.count } }

    /// Registers `channel`, closing another first when at the cap; false when every open
    /// connection is being answered, and `channel` must be refused. The entry goes when the
    /// channel closes.
    func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let outcome = state.withLock { state -> (admitted: Bool, evicted: (any Channel)?, burstBegins: Bool) in
            var evicted: (any Channel)?
            if state.entries.count >= limit {
                let victim = state.entries.filter { $0.value.phase != .answering }.min { a, b in
                    (a.value.phase, a.value.since) < (b.value.phase, b.value.since)
                }
                guard let victim else { return (false, nil, false) }
                state.entries[victim.key] = nil
                evicted = victim.value.channel
            }
            state.tick += 1
            state.low = min(state.low, state.entries.count)
            state.entries[id] = Entry(channel: channel, phase: .idle, since: state.tick)
            state.peak = max(state.peak, state.entries.count)
            let burstBegins = !state.burst && state.entries.count - state.low >= Self.burstConnections
            if burstBegins { state.burst = true }
            return (true, evicted, burstBegins)
        }
        if outcome.burstBegins { HeapTrimmer.shared.burstBegan() }
        if let evicted = outcome.evicted {
            evicted.close(promise: nil)
            Counter(label: "hifc_http_connections_evicted_total").increment()
        }
        guard outcome.admitted else {
            Counter(label: "hifc_http_connections_refused_total").increment()
            return false
        }
        channel.closeFuture.whenComplete { [self] _ in
            let burstGone = state.withLock { state -> Bool in
                state.entries[id] = nil
                // The crowd is going: its memory goes back to the system once it has gone (the
                // trimmer waits for a quiet second).
                guard state.burst, state.peak - state.entries.count >= Self.burstConnections else { return false }
                state.burst = false
                state.low = state.entries.count
                state.peak = state.entries.count
                return true
            }
            if burstGone { HeapTrimmer.shared.request() }
            publishCount()
        }
        publishCount()
        return true
    }

    /// Records what `channel` is doing now.
    func setPhase(_ phase: ConnectionPhase, of channel: any Channel) {
        state.withLock { state in
            let id = ObjectIdentifier(channel)
            guard state.entries[id] != nil, state.entries[id]!.phase != phase else { return }
            state.tick += 1
            state.entries[id]!.phase = phase
            state.entries[id]!.since = state.tick
        }
    }

    /// Closes every open connection (the end of a shutdown that ran out of time); returns how many.
    @discardableResult
    func closeAll() -> Int {
        let channels = state.withLock { $0.entries.values.map(\.channel) }
        channels.forEach { $0.close(promise: nil) }
        return channels.count
    }

    private func publishCount() {
        Gauge(label: "hifc_http_connections_open").record(count)
    }
}
