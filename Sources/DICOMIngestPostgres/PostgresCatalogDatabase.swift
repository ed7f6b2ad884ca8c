import DICOMIngestSQL
import Dispatch
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Foundation
import Synchronization

/// The catalog's connections: postgres-nio's own `PostgresClient` pool (it opens, keeps alive and replaces
/// connections; a connection the server dropped is never lent again), lent to callers that block. The catalog's API
/// is synchronous, called from worker and executor threads: a lease is taken in a task of its own, which hands the
/// connection to the waiting thread and holds the lease until that thread gives it back, so no thread of the
/// cooperative pool ever blocks. Every wait has a bound (`PostgresLocation.timeout`).
final class PostgresConnectionPool: Sendable {
    let location: PostgresLocation
    private let client: PostgresClient
    private let running: Task<Void, Never>
    private let logger = Logger(label: "dicom-ingest.postgres")

    init(location: PostgresLocation) throws {
        self.location = location
        var configuration = try location.clientConfiguration()
        configuration.options.maximumConnections = location.poolSize
        configuration.options.connectTimeout = .seconds(min(10, location.timeout))
        // The catalog's schema, and a name that tells in pg_stat_activity which catalog a connection serves.
        configuration.options.additionalStartupParameters = [("application_name", "dicom-ingest/\(location.schema)")]
            + (location.schema == "public" ? [] : [("search_path", location.schema)])
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        running = Task(executorPreference: PostgresTaskExecutor.shared) { await client.run() }
    }

    /// Runs `body` on a connection of the pool, for at most the catalog's timeout to get one.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let lease = ConnectionLease()
        let client = self.client
        let leasing = Task(executorPreference: PostgresTaskExecutor.shared) {
            do {
                try await client.withConnection { connection in await lease.lend(connection) }
            } catch {
                lease.fail(error)
            }
        }
        let connection: PostgresConnection
        switch lease.waitForConnection(seconds: location.timeout) {
        case .lent(let lent): connection = lent
        case .failed(let error): throw PostgresCatalogError(error)
        case .timedOut:
            leasing.cancel()
            throw PostgresCatalogError.connectionLost("no connection to the catalog within \(Int(location.timeout)) s")
        }
        defer { lease.giveBack() }
        return try body(connection)
    }

    func close() {
        running.cancel()
    }

    var queryLogger: Logger { logger }
}

/// Where the client's tasks run: a queue of their own, not the cooperative pool, whose few threads (one per core)
/// the blocking callers of the catalog may all be holding; the client's work would then never be scheduled.
private final class PostgresTaskExecutor: TaskExecutor {
    static let shared = PostgresTaskExecutor()
    private let queue = DispatchQueue(label: "dicom-ingest.postgres-client")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// One lease handed from the task that holds it to the thread that uses it, and back.
private final class ConnectionLease: Sendable {
    enum Handed {
        case lent(PostgresConnection)
        case failed(any Error)
        case timedOut
    }

    private struct State {
        var handed: Handed?
        var back: CheckedContinuation<Void, Never>?
        /// The thread gave the connection back, or stopped waiting for it.
        var done = false
    }

    private let state = Mutex(State())
    private let ready = DispatchSemaphore(value: 0)

    /// The holding task's side: hands `connection` over and waits until it is given back.
    func lend(_ connection: PostgresConnection) async {
        await withCheckedContinuation { (back: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                guard !state.done else { return true }
                state.handed = .lent(connection)
                state.back = back
                return false
            }
            if resumeNow { back.resume() } else { ready.signal() }
        }
    }

    func fail(_ error: any Error) {
        state.withLock { state in
            if state.handed == nil { state.handed = .failed(error) }
        }
        ready.signal()
    }

    func waitForConnection(seconds: Double) -> Handed {
        _ = ready.wait(timeout: .now() + seconds)
        return state.withLock { state in
            guard let handed = state.handed else {
                state.done = true
                return .timedOut
            }
            if case .failed = handed { state.done = true }
            return handed
        }
    }

    func giveBack() {
        let back = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.done = true
            defer { state.back = nil }
            return state.back
        }
        back?.resume()
    }
}

/// A statement PostgreSQL refused (the server's SQLSTATE and message), after which the connection may still be
/// usable, or the loss of the connection (a restart, a failover, an administrator, a timeout).
struct PostgresCatalogError: Error, CustomStringConvertible {
    var sqlState: String
    var message: String
    var connectionIsUsable: Bool
    /// The server said what went wrong (a statement it answered did not commit); false when the connection went
    /// without an answer.
    var serverAnswered = false

    var description: String { "PostgreSQL \(sqlState): \(message)" }

    static func connectionLost(_ message: String) -> PostgresCatalogError {
        PostgresCatalogError(sqlState: "connection", message: message, connectionIsUsable: false)
    }

    init(sqlState: String, message: String, connectionIsUsable: Bool) {
        self.sqlState = sqlState
        self.message = message
        self.connectionIsUsable = connectionIsUsable
    }

    init(_ error: any Error) {
        if let error = error as? PostgresCatalogError {
            self = error
        } else if let error = error as? PSQLError, let info = error.serverInfo {
            sqlState = info[.sqlState] ?? "?"
            message = info[.message] ?? String(reflecting: error)
            // FATAL and PANIC end the session (57P01 when an administrator terminates it); class 57 (operator
            // intervention: shutdown, crash shutdown, cannot connect now) and 08 (connection exception) mean a
            // connection that is gone or a server that is restarting.
            serverAnswered = true
            let severity = info[.severity] ?? ""
            connectionIsUsable = !["FATAL", "PANIC"].contains(severity) && !sqlState.hasPrefix("57") && !sqlState.hasPrefix("08")
        } else {
            sqlState = "connection"
            // PSQLError's description hides its details on purpose; what went wrong with a connection is safe to tell.
            message = String(reflecting: error)
            connectionIsUsable = false
        }
    }
}

/// `SQLDatabase` on PostgreSQL: reads run statement by statement (each sees what is committed), writes in one
/// READ COMMITTED transaction whose races `SQLConnection.lock` settles.
///
/// The catalog survives its server: a read or a write that failed for a connection reason (a terminated backend, a
/// restart, a statement past the timeout) runs again on a new connection, with backoff, for up to
/// `PostgresLocation.retrySeconds` from the first failure before its error is the caller's. A transaction body is a
/// function of what it reads, so a write that did not commit simply runs again. A write whose COMMIT went unanswered
/// may have committed: each write learns its transaction ID first (`txid_current()`), and the next connection asks
/// `txid_status` whether it committed (the result the body returned stands) or not (it runs again), so every write
/// lands exactly once.
struct PostgresCatalogDatabase: SQLDatabase {
    let connections: PostgresConnectionPool

    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        var unused = Transaction<T>()
        return try retrying(&unused) { _ in
            try connections.withConnection { connection in try body(statements(on: connection)) }
        }
    }

    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        var last = Transaction<T>()
        return try retrying(&last) { last in try transaction(body, &last) }
    }

    /// What a write attempt got to before its connection failed.
    struct Transaction<T> {
        var id: Int64?
        var result: T?
        var commitSent = false
    }

    private func statements(on connection: PostgresConnection) -> PostgresSQLConnection {
        PostgresSQLConnection(connection: connection, logger: connections.queryLogger, timeout: connections.location.timeout)
    }

    /// Runs `attempt` until it succeeds, fails for a reason that is not the connection's, or the retry time is over.
    private func retrying<T>(_ last: inout Transaction<T>, _ attempt: (inout Transaction<T>) throws -> T) throws -> T {
        var deadline: UInt64?
        var pause = 0.05
        var attempts = 0
        while true {
            attempts += 1
            do {
                if last.commitSent, let id = last.id {
                    // The last COMMIT went unanswered: did it land?
                    switch try connections.withConnection({ try statements(on: $0).rows("SELECT txid_status($1) AS s", [.integer(id)]) })
                        .first?.string("s")
                    {
                    case "committed": if let result = last.result { return result }
                    case "in progress": throw PostgresCatalogError.connectionLost("transaction \(id) is still being committed")
                    default: break
                    }
                }
                last = Transaction()
                return try attempt(&last)
            } catch let error as PostgresCatalogError where !error.connectionIsUsable {
                let now = DispatchTime.now().uptimeNanoseconds
                // Counted from the first failure: a statement that ran out its timeout still gets the whole time.
                if deadline == nil { deadline = now &+ UInt64(connections.location.retrySeconds * 1e9) }
                guard let deadline, now < deadline else {
                    throw PostgresCatalogError.connectionLost(
                        "\(error.message) (still failing after \(attempts) attempts in \(Int(connections.location.retrySeconds)) s)")
                }
                // A COMMIT the server answered with an error did not commit.
                if error.serverAnswered { last.commitSent = false }
                connections.queryLogger.warning(
                    "catalog connection lost; trying again",
                    metadata: ["error": .string(error.description), "attempt": .stringConvertible(attempts)])
                Thread.sleep(forTimeInterval: pause)
                pause = min(pause * 2, 2)
            }
        }
    }

    private func transaction<T>(_ body: (any SQLConnection) throws -> T, _ state: inout Transaction<T>) throws -> T {
        try connections.withConnection { connection in
            let sql = statements(on: connection)
            try sql.execute("BEGIN", [])
            do {
                state.id = try sql.rows("SELECT txid_current() AS id", []).first.map { Int64($0.int("id")) }
                let result = try body(sql)
                state.result = result
                state.commitSent = true
                try sql.execute("COMMIT", [])
                return result
            } catch {
                // A failed COMMIT has ended the transaction already; ROLLBACK then only warns.
                _ = try? sql.execute("ROLLBACK", [])
                throw error
            }
        }
    }
}

struct PostgresSQLConnection: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger
    /// Seconds a statement may take before its connection is closed and the statement fails as a lost connection.
    let timeout: Double

    var dialect: SQLDialect { .postgres }

    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int {
        try query(sql, arguments).metadata.rows ?? 0
    }

    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow] {
        let result = try query(sql, arguments)
        guard let first = result.rows.first else { return [] }
        let names = first.map(\.columnName)
        return result.rows.map { row in SQLRow(names: names, values: row.map(Self.value)) }
    }

    /// A transaction-scoped advisory lock on the key's 64-bit hash.
    func lock(_ key: String) throws {
        try execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [.text(key)])
    }

    private func query(_ sql: String, _ arguments: [SQLValue]) throws -> PostgresQueryResult {
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument {
            case .null: binds.appendNull()
            case .integer(let number): binds.append(number)
            case .real(let number): binds.append(number)
            case .text(let text): binds.append(text)
            case .blob(let bytes): binds.append(ByteBuffer(bytes: bytes))
            }
        }
        // A query written to a connection whose channel has closed is never answered (postgres-nio writes it with
        // no promise): a closed connection is a lost one at once, and the timeout bounds the race with a close.
        guard !connection.isClosed else { throw PostgresCatalogError.connectionLost("the connection to the catalog has closed") }
        let answer = Mutex<Result<PostgresQueryResult, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).whenComplete { result in
            answer.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else {
            // A statement that never answers (a server gone without closing the socket): the connection goes.
            connection.close().whenComplete { _ in }
            throw PostgresCatalogError.connectionLost("the catalog did not answer within \(Int(timeout)) s")
        }
        switch answer.withLock({ $0 }) {
        case .success(let result): return result
        case .failure(let error): throw PostgresCatalogError(error)
        case nil: throw PostgresCatalogError.connectionLost("no answer")
        }
    }

    static func value(_ cell: PostgresCell) -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .bool: return (try? cell.decode(Bool.self)).map { .integer($0 ? 1 : 0) } ?? .null
        case .int2, .int4, .int8: return (try? cell.decode(Int64.self)).map(SQLValue.integer) ?? .null
        case .float4, .float8: return (try? cell.decode(Double.self)).map(SQLValue.real) ?? .null
        case .bytea: return (try? cell.decode(ByteBuffer.self)).map { .blob(Array($0.readableBytesView)) } ?? .null
        default: return (try? cell.decode(String.self)).map(SQLValue.text) ?? .null
        }
    }
}
