import DriftcheckCore
import Foundation
import NIOCore
import NIOHTTP1

/// Body bytes kept for the store: the first `limit` bytes and the size of the whole.
struct Capture {
    // Data from the start, so the store gets the bytes without another copy.
    var bytes = Data()
    var size = 0

    mutating func append(_ part: ByteBuffer, limit: Int) {
        size += part.readableBytes
        let room = limit - bytes.count
        guard room > 0 else { return }
        let count = min(room, part.readableBytes)
        part.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress else { return }
            bytes.append(base.assumingMemoryBound(to: UInt8.self), count: count)
        }
    }

    /// Sizes the buffer once from Content-Length: growing it by doubling would copy the body
    /// several times and leave up to twice its size allocated while it waits for the store.
    mutating func expect(_ length: Int?, limit: Int) {
        guard let length, length > 0 else { return }
        bytes.reserveCapacity(min(length, limit))
    }

    var captured: CapturedBody { CapturedBody(bytes: bytes, size: size) }
}

/// One request travelling through the proxy: what was routed, and what has been seen of it.
// A class: its captures grow with every body part, and copying them in and out of the state
// enum on each part would copy the bodies.
final class InFlight {
    let routed: RequestRouting.Routed
    let startedAt: Date
    let start: NIODeadline
    var requestBody = Capture()
    var responseBody = Capture()
    var requestComplete = false
    /// Request parts that arrived before the upstream connection did.
    var pending: [RequestPart] = []
    var responseHead: ResponseHead?
    /// The response goes to the client in a way that ends the connection (delimited by its close).
    var closesClient = false
    var lastUpstreamActivity: NIODeadline
    /// How long the upstream may stay silent: the request's rule, until the response says more.
    var silence: RequestRouting.SilenceLimit

    init(_ routed: RequestRouting.Routed, now: NIODeadline) {
        self.routed = routed
        // Wall-clock time only for the record; durations come from the loop's clock.
        startedAt = Date()
        start = now
        lastUpstreamActivity = now
        silence = routed.silence
    }

    var service: String { routed.service }
    var target: UpstreamTarget { routed.target }
    var clientHead: RequestHead { routed.clientHead }

    /// Both sides keep the connection after this exchange.
    var clientKeepsAlive: Bool { routed.clientHead.isKeepAlive && requestComplete && !closesClient }

    func exchange(result: ExchangeResult, now: NIODeadline) -> Exchange {
        let request = RecordedRequest(
            // h2c is how the bytes travelled, not part of the URL: recorded (and exported) as http.
            method: routed.clientHead.method, scheme: target.scheme == "h2c" ? "http" : target.scheme,
            host: target.host, port: target.port,
            path: routed.path, query: routed.query, headers: routed.clientHead.recordedFields,
            body: requestBody.captured)
        return Exchange(
            service: service, request: request, result: result, startedAt: startedAt,
            duration: Double((now - start).nanoseconds) / 1e9)
    }
}

/// What one client connection of the proxy is doing, as a value: each event returns the action
/// for `ProxyServerHandler` to perform, and an event that does not fit the state is answered
/// with an explicit "ignore" or clean-up action instead of being acted on.
struct ConnectionStateMachine {
    enum State {
        /// Waiting for a request head.
        case idle
        /// A request was routed; its upstream connection is being opened.
        case connecting(InFlight)
        /// Request and response stream between the client and `UpstreamConnection`.
        case streaming(InFlight, UpstreamConnection)
        /// An exchange ended while the store was full: the next request waits for room.
        case waitingForRoom
        /// `CONNECT`: the connection was handed to the tunnel's own handlers.
        case tunnelling
        /// The connection is closing or closed: whatever arrives is dropped.
        case closed
    }

    private(set) var state: State = .idle
    /// Parts of later requests (pipelining), held in order until the current exchange ends.
    // An array: empty, it allocates nothing, and most connections never pipeline.
    private(set) var held: [RequestPart] = []
    let route: ListenerRoute
    let maxBody: Int

    init(route: ListenerRoute, maxBody: Int) {
        self.route = route
        self.maxBody = maxBody
    }

    // MARK: Client events

    enum ClientReadAction {
        /// Open (or take) an upstream connection for the new exchange.
        case connect(InFlight)
        case tunnel(ListenAddress)
        case respondAndClose(HTTPResponseStatus, String)
        /// Send this part of the exchange's request upstream.
        case forward(RequestPart, InFlight, UpstreamConnection)
        /// Kept for later (pipelined, or before the upstream connection): stop reading.
        case hold
        case none
    }

    /// A part from the client; `fromHeld` when it is one `nextHeld()` gave back.
    mutating func clientRead(
        _ part: RequestPart, fromHeld: Bool = false, now: NIODeadline
    ) -> ClientReadAction {
        switch state {
        case .closed, .tunnelling:
            return .none
        case .waitingForRoom:
            held.append(part)
            return .hold
        case .idle:
            // Parts held earlier go first.
            guard fromHeld || held.isEmpty else {
                held.append(part)
                return .hold
            }
            // A body or end with no head: the rest of a request already answered and closed.
            guard case .head(let head) = part else { return .none }
            switch RequestRouting.decide(head, route: route) {
            case .reject(let status, let message):
                state = .closed
                return .respondAndClose(status, message)
            case .tunnel(let address):
                state = .tunnelling
                return .tunnel(address)
            case .exchange(let routed):
                let exchange = InFlight(routed, now: now)
                exchange.requestBody.expect(head.contentLength, limit: maxBody)
                state = .connecting(exchange)
                return .connect(exchange)
            }
        case .connecting(let exchange), .streaming(let exchange, _):
            if exchange.requestComplete {
                held.append(part)
                return .hold
            }
            let upstream: UpstreamConnection?
            if case .streaming(_, let connection) = state { upstream = connection } else { upstream = nil }
            switch part {
            case .head:
                // The framer ends a request before it starts the next: this cannot come.
                return .none
            case .body(let buffer):
                exchange.requestBody.append(buffer, limit: maxBody)
                // The client is read only while the upstream takes what it is sent: a part
                // arriving means the upstream took the previous ones.
                if upstream != nil { exchange.lastUpstreamActivity = now }
            case .framing:
                if upstream != nil { exchange.lastUpstreamActivity = now }
            case .end:
                exchange.requestComplete = true
                exchange.lastUpstreamActivity = now
            }
            guard let upstream else {
                exchange.pending.append(part)
                return .none
            }
            return .forward(part, exchange, upstream)
        }
    }

    /// The next held part, when the state can take it now.
    mutating func nextHeld() -> RequestPart? {
        switch state {
        case .idle: return held.isEmpty ? nil : held.removeFirst()
        case .connecting(let exchange), .streaming(let exchange, _):
            return exchange.requestComplete || held.isEmpty ? nil : held.removeFirst()
        case .waitingForRoom, .tunnelling, .closed: return nil
        }
    }

    enum ClientClosedAction {
        /// Record the exchange as abandoned by the client, and close its upstream connection.
        case abandon(InFlight, UpstreamConnection?)
        case none
    }

    mutating func clientClosed() -> ClientClosedAction {
        let previous = state
        state = .closed
        held.removeAll()
        switch previous {
        case .connecting(let exchange): return .abandon(exchange, nil)
        case .streaming(let exchange, let upstream): return .abandon(exchange, upstream)
        case .idle, .waitingForRoom, .tunnelling, .closed: return .none
        }
    }

    enum MalformedAction {
        /// Drop the exchange unrecorded (close its upstream, if any), then answer and close.
        case dropAndRespond(InFlight?, UpstreamConnection?, HTTPResponseStatus)
        /// A response is already under way: drop the exchange unrecorded and close.
        case dropAndClose(InFlight, UpstreamConnection?)
        case none
    }

    /// The client sent something the HTTP/1.1 parser refused.
    mutating func malformedRequest(_ status: HTTPResponseStatus) -> MalformedAction {
        let previous = state
        state = .closed
        held.removeAll()
        switch previous {
        case .idle, .waitingForRoom: return .dropAndRespond(nil, nil, status)
        case .connecting(let exchange): return .dropAndRespond(exchange, nil, status)
        case .streaming(let exchange, let upstream):
            return exchange.responseHead == nil
                ? .dropAndRespond(exchange, upstream, status) : .dropAndClose(exchange, upstream)
        case .tunnelling, .closed: return .none
        }
    }

    // MARK: Upstream events

    enum ConnectedAction {
        /// Send the head and the parts held so far; answer `100 Continue` if the client waits for it.
        case send(InFlight, UpstreamConnection, continue: Bool)
        /// The exchange it was opened for is over: close (or pool) the connection.
        case discard(UpstreamConnection)
    }

    mutating func upstreamConnected(_ connection: UpstreamConnection, for exchange: InFlight, now: NIODeadline)
        -> ConnectedAction
    {
        guard case .connecting(let current) = state, current === exchange else { return .discard(connection) }
        state = .streaming(exchange, connection)
        exchange.lastUpstreamActivity = now
        return .send(exchange, connection, continue: exchange.routed.expectContinue && !exchange.requestComplete)
    }

    enum FailureAction {
        /// Record `failure`; answer the client with `status` and keep or close the connection,
        /// or close it at once when a response was already under way.
        case fail(InFlight, UpstreamConnection?, ExchangeFailure, reply: Reply)
        case none

        enum Reply: Equatable {
            case respond(HTTPResponseStatus, keepAlive: Bool)
            case close
        }
    }

    mutating func upstreamConnectFailed(_ error: Error, for exchange: InFlight) -> FailureAction {
        guard case .connecting(let current) = state, current === exchange else { return .none }
        var timedOut = false
        if case ChannelError.connectTimeout = error { timedOut = true }
        return fail(
            exchange, nil, status: timedOut ? .gatewayTimeout : .badGateway,
            ExchangeFailure(
                timedOut ? .timeout : .connect,
                "cannot connect to \(exchange.target.scheme)://\(exchange.target.authority): \(error)"))
    }

    mutating func upstreamFailed(_ error: Error?) -> FailureAction {
        guard case .streaming(let exchange, let connection) = state else { return .none }
        let reason =
            error.map { "upstream failed: \($0)" } ?? "upstream closed the connection before the response completed"
        return fail(exchange, connection, status: .badGateway, ExchangeFailure(.upstreamClosed, reason))
    }

    enum TimerAction {
        /// Look again at this deadline: there was activity since the timer was set.
        case rearm(NIODeadline)
        case fail(FailureAction)
        case none
    }

    /// The upstream-timeout timer fired at `now`. `upstreamTakesMore`: the upstream connection
    /// can take more of the request now.
    ///
    /// Only the upstream's silence counts, as nginx's read and send timeouts do: not the time a
    /// long upload takes while the upstream reads it, nor a client pausing its body (the client's
    /// own idle timeout is for that).
    mutating func timerFired(now: NIODeadline, limit configured: TimeAmount, upstreamTakesMore: Bool) -> TimerAction {
        guard case .streaming(let exchange, let connection) = state,
            let limit = exchange.silence.applied(to: configured)
        else { return .none }
        if !exchange.requestComplete && upstreamTakesMore { exchange.lastUpstreamActivity = now }
        if now - exchange.lastUpstreamActivity < limit { return .rearm(exchange.lastUpstreamActivity + limit) }
        let milliseconds = limit.nanoseconds / 1_000_000
        let failure =
            exchange.requestComplete
            ? ExchangeFailure(.timeout, "upstream sent nothing for \(milliseconds) ms")
            : ExchangeFailure(.timeout, "upstream took none of the request for \(milliseconds) ms")
        return .fail(fail(exchange, connection, status: .gatewayTimeout, failure))
    }

    enum UpstreamReadAction {
        /// A head, body or framing part for the client.
        case write(ResponsePart, InFlight)
        /// The response is complete: write its end, record it, keep or close both connections.
        case complete(
            InFlight, UpstreamConnection, RecordedResponse, end: ResponsePart, reuseUpstream: Bool, keepClient: Bool)
        case none
    }

    mutating func upstreamRead(_ part: ResponsePart, now: NIODeadline) -> UpstreamReadAction {
        guard case .streaming(let exchange, let connection) = state else { return .none }
        exchange.lastUpstreamActivity = now
        switch part {
        case .head(let head):
            // Interim answers (103 Early Hints) are not passed on: the proxy answers
            // `100 Continue` itself, and a client of HTTP/1.0 could not read them.
            if head.isInterim { return .none }
            exchange.responseHead = head
            exchange.responseBody.expect(head.contentLength, limit: maxBody)
            // An event stream stays open for its client, quiet between events for as long as the
            // server likes (EventSource reconnects only when it ends): the client ends it.
            if head.isEventStream { exchange.silence = .none }
            return .write(part, exchange)
        case .body(let buffer):
            exchange.responseBody.append(buffer, limit: maxBody)
            return .write(part, exchange)
        case .framing:
            return .write(part, exchange)
        case .end(_, let trailers):
            guard let head = exchange.responseHead else { return .none }
            let keepClient = exchange.clientKeepsAlive
            state = keepClient ? .idle : .closed
            if !keepClient { held.removeAll() }
            let response = RecordedResponse(
                status: head.status, headers: head.recordedFields, body: exchange.responseBody.captured,
                trailers: HeaderFields(fields: trailers.map { .init($0.name, $0.value) }))
            return .complete(
                exchange, connection, response, end: part, reuseUpstream: exchange.requestComplete && head.isKeepAlive,
                keepClient: keepClient)
        }
    }

    // MARK: The store

    /// The store had no room when an exchange ended: the next request waits.
    mutating func storeFull() {
        if case .idle = state { state = .waitingForRoom }
    }

    mutating func roomAvailable() {
        if case .waitingForRoom = state { state = .idle }
    }

    // MARK: Queries

    /// The exchange in progress, if any.
    var current: InFlight? {
        switch state {
        case .connecting(let exchange), .streaming(let exchange, _): return exchange
        case .idle, .waitingForRoom, .tunnelling, .closed: return nil
        }
    }

    var upstream: UpstreamConnection? {
        if case .streaming(_, let connection) = state { return connection }
        return nil
    }

    var isIdle: Bool {
        if case .idle = state { return held.isEmpty }
        return false
    }

    var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// Whether reading the client's next bytes fits the state (flow control aside). While a
    /// response is due, reading goes on: the next request's parts are held as they come, and
    /// only then is reading paused — toggling it for every request would cost two option
    /// changes per exchange.
    var wantsClientReads: Bool {
        guard held.isEmpty else { return false }
        switch state {
        case .idle, .streaming: return true
        case .connecting, .waitingForRoom, .tunnelling, .closed: return false
        }
    }

    /// The upstream connection whose writability decides whether the client is read: the
    /// current exchange's, while its request is still coming.
    var uploadingTo: UpstreamConnection? {
        if case .streaming(let exchange, let connection) = state, !exchange.requestComplete { return connection }
        return nil
    }

    private mutating func fail(
        _ exchange: InFlight, _ connection: UpstreamConnection?, status: HTTPResponseStatus, _ failure: ExchangeFailure
    ) -> FailureAction {
        let reply: FailureAction.Reply
        if exchange.responseHead != nil {
            reply = .close
        } else {
            reply = .respond(status, keepAlive: exchange.clientKeepsAlive)
        }
        if reply == .respond(status, keepAlive: true) {
            state = .idle
        } else {
            state = .closed
            held.removeAll()
        }
        return .fail(exchange, connection, failure, reply: reply)
    }
}
