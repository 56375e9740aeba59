import DriftcheckProcess
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ChildProcessTests {
    /// Descriptors opened without close-on-exec (as NIO opens its sockets) stay ours.
    @Test func aChildGetsOnlyStandardInputOutputAndError() throws {
        let file = open("/dev/null", O_RDONLY)
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer {
            close(file)
            close(socket)
        }
        #expect(file > 2 && socket > 2)
        let listing = try output(of: ["sh", "-c", "ls /proc/$$/fd"])
        #expect(listing.split(whereSeparator: \.isWhitespace) == ["0", "1", "2"], "\(listing)")
    }

    /// The hang this prevents: a connection we close must end for its peer even while a child
    /// started during the connection's life is still running.
    @Test func aConnectionWeCloseEndsForItsPeerWhileAChildRuns() async throws {
        let (listener, port) = try listen()
        defer { close(listener) }
        let client = try connect(port: port)
        let server = accept(listener, nil, nil)
        #expect(server >= 0)
        defer { close(server) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let child = try ChildProcess.spawn(["sleep", "60"], environment: ProcessInfo.processInfo.environment)
        close(client)
        var byte: UInt8 = 0
        let started = Date()
        let received = recv(server, &byte, 1, 0)
        #expect(received == 0, "the peer saw no end of the connection (errno \(errno))")
        #expect(Date().timeIntervalSince(started) < 20)
        _ = await child.terminate(grace: 1)
    }

    func output(of arguments: [String]) throws -> String {
        let path = NSTemporaryDirectory() + "child-\(UUID().uuidString.prefix(8)).log"
        defer { unlink(path) }
        let child = try ChildProcess.spawn(
            arguments, environment: ProcessInfo.processInfo.environment, outputPath: path)
        #expect(child.waitBlocking() == 0)
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    func listen() throws -> (Int32, Int) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && Glibc.listen(fd, 1) == 0
                    && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRNOTAVAIL) }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    func connect(port: Int) throws -> Int32 {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { throw POSIXError(.ECONNREFUSED) }
        return fd
    }
}
