import CDriftcheckShims
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a child process could not be started.
public struct SpawnError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// A child process in its own process group, started with `posix_spawn`, a clean signal mask
/// and no descriptor of ours but stdin, stdout and stderr: Foundation's `Process` started from
/// async code passes on a blocked mask, and such a child ignores SIGTERM.
public final class ChildProcess: Sendable {
    public let pid: pid_t

    private init(pid: pid_t) { self.pid = pid }

    /// Starts `arguments[0]` (searched in `PATH`) with exactly `environment`.
    /// `directory` sets its working directory; `outputPath` receives its stdout and stderr.
    public static func spawn(
        _ arguments: [String], environment: [String: String], directory: String? = nil,
        outputPath: String? = nil
    ) throws -> ChildProcess {
        guard let program = arguments.first, !program.isEmpty else {
            throw SpawnError(description: "no command given")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        let flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let directory {
            guard FileManager.default.fileExists(atPath: directory) else {
                throw SpawnError(description: "\(directory): no such directory")
            }
            driftcheck_spawn_addchdir(&actions, directory)
        }
        if let outputPath {
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        // NIO's sockets and epoll descriptors are not close-on-exec: a child that inherited a
        // connection keeps it open after we close it, so its peer never sees the end (tests
        // waited forever for a close), and a wrapped command would hold the proxy's listener.
        driftcheck_spawn_addclosefrom(&actions, 3)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        // posix_spawnp searches our PATH; honour the child's PATH when it differs.
        let resolved = resolve(program, path: environment["PATH"])
        let status = posix_spawnp(&pid, resolved, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw SpawnError(description: "cannot start '\(program)': \(String(cString: strerror(status)))")
        }
        return ChildProcess(pid: pid)
    }

    static func resolve(_ program: String, path: String?) -> String {
        locate(program, path: path) ?? program
    }

    /// The executable `program` names, searched in `path` when it has no `/`; nil when there is none.
    public static func locate(_ program: String, path: String?) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Sends `signal` to the child's whole process group.
    public func signalGroup(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Waits for the child to exit; returns its exit status, or 128 + the signal that killed it.
    public func wait() async -> Int32 {
        let pid = self.pid
        return await withCheckedContinuation { continuation in
            // waitpid blocks, so it gets a thread of its own rather than a cooperative one.
            let thread = Thread { continuation.resume(returning: Self.reap(pid)) }
            thread.start()
        }
    }

    /// Waits for the process on the calling thread (not from async code: it blocks the thread);
    /// its exit status, or 128 + the signal that ended it.
    public func waitBlocking() -> Int32 { Self.reap(pid) }

    private static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let low = status & 0x7F
        return low == 0 ? (status >> 8) & 0xFF : 128 + low
    }

    /// Asks the group to stop with SIGTERM, then SIGKILLs it after `grace` seconds.
    public func terminate(grace: Double = 5) async -> Int32 {
        signalGroup(SIGTERM)
        let pid = self.pid
        let killer = Task {
            try await Task.sleep(nanoseconds: UInt64(grace * 1e9))
            kill(-pid, SIGKILL)
        }
        let status = await wait()
        killer.cancel()
        // Children of the child may outlive it; the group goes with it.
        kill(-pid, SIGKILL)
        return status
    }
}
