// Floors for scripts/bench.sh: what this machine lets a SwiftNIO proxy reach, so that the
// recorder's gap to nginx can be split into what NIO itself costs, what HTTP/1.1 codecs cost,
// what our proxy's logic and capture cost, and what storing costs.
// Usage: driftcheck-bench-floor relay|raw|http|proxy UPSTREAM_PORT, or parse ROUNDS
//   relay  a TCP byte relay: NIO's read/write path, no HTTP at all
//   raw    HTTP/1.1 framed on the raw bytes by driftcheck's HTTP1Framer, heads rewritten, bodies
//          forwarded in the buffers they came in (one parse per message), pooled upstreams
//   http   NIOHTTP1 decoding and encoding on both sides, pooled upstream connections, no capture
//   proxy  driftcheck's own RecordingProxy with every exchange captured and then discarded
// Prints "listening on http://127.0.0.1:PORT" on stderr, as `driftcheck record` does.
import DriftcheckCore
import DriftcheckProxy
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

let arguments = CommandLine.arguments
// `parse N`: the framer alone — a wrk request and an nginx answer framed and rewritten N times.
if arguments.count == 3, arguments[1] == "parse", let rounds = Int(arguments[2]) {
    print(FramerTiming.run(rounds: rounds))
    exit(0)
}
guard arguments.count == 3, let upstreamPort = Int(arguments[2]),
    ["relay", "raw", "http", "proxy"].contains(arguments[1])
else {
    FileHandle.standardError.write(Data("usage: driftcheck-bench-floor relay|raw|http|proxy UPSTREAM_PORT\n".utf8))
    exit(2)
}
let mode = arguments[1]
// FLOOR_LOOPS: event loops (default: one per core), to see what a second loop costs in wake-ups.
let group = MultiThreadedEventLoopGroup(
    numberOfThreads: ProcessInfo.processInfo.environment["FLOOR_LOOPS"].flatMap { Int($0) } ?? System.coreCount)
let upstream = try SocketAddress(ipAddress: "127.0.0.1", port: upstreamPort)

var pools: [ObjectIdentifier: FloorPool] = [:]
for loop in group.makeIterator() { pools[ObjectIdentifier(loop)] = FloorPool() }
let target = FloorUpstream(address: upstream, host: "127.0.0.1:\(upstreamPort)", pools: pools)

let port: Int
switch mode {
case "proxy":
    let proxy = RecordingProxy(group: group) { _ in }
    let bound = try await proxy.listen(
        on: ListenAddress(host: "127.0.0.1", port: 0),
        route: .reverse(service: "floor", upstream: UpstreamURL(scheme: "http", host: "127.0.0.1", port: upstreamPort)))
    port = bound.port
default:
    let server = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if mode == "relay" {
                    let mine = RelayHandler()
                    try channel.pipeline.syncOperations.addHandler(mine)
                    channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
                    let loopBound = NIOLoopBound(mine, eventLoop: channel.eventLoop)
                    ClientBootstrap(group: channel.eventLoop)
                        .channelOption(.socketOption(.tcp_nodelay), value: 1)
                        .channelInitializer { peer in
                            peer.eventLoop.makeCompletedFuture {
                                let theirs = RelayHandler()
                                theirs.partner = loopBound.value
                                loopBound.value.partner = theirs
                                try peer.pipeline.syncOperations.addHandler(theirs)
                            }
                        }
                        .connect(to: upstream)
                        .whenComplete { result in
                            switch result {
                            case .success: channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                            case .failure: channel.close(promise: nil)
                            }
                        }
                } else if mode == "raw" {
                    try channel.pipeline.syncOperations.addHandler(RawServerHandler(target: target))
                } else {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FloorServerHandler(target: target))
                }
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    port = server.localAddress!.port!
}
FileHandle.standardError.write(Data("\(mode) floor listening on http://127.0.0.1:\(port)\n".utf8))
while true { try await Task.sleep(for: .seconds(3600)) }
