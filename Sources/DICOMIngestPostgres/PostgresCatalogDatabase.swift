import DICOMIngestSQL
import Dispatch
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// Connections to one catalog, lent to one caller at a time and opened when first needed. Callers block (the
/// catalog's API is synchronous, called from worker and executor threads, never from an event loop).
final class PostgresConnectionPool: Sendable {
    private struct State {
        var idle: [PostgresConnection] = []
        var closed = false
    }

    let location: PostgresLocation
    private let configuration: PostgresConnection.Configuration
    private let state = Mutex(State())
    private let slots: DispatchSemaphoreBox
    private let nextID = Atomic<Int>(0)
    private let logger = Logger(label: "dicom-ingest.postgres")

    init(location: PostgresLocation) throws {
        self.location = location
        configuration = try location.configuration()
        slots = DispatchSemaphoreBox(value: location.poolSize)
    }

    /// Runs `body` on a connection of the pool; a connection that failed under it is closed, not lent again.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        slots.wait()
        defer { slots.signal() }
        var connection = state.withLock { $0.idle.popLast() }
        if connection == nil || connection?.isClosed == true {
            let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
            connection = try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: id, logger: logger
            ).wait()
            // The catalog's schema, and a name that tells in pg_stat_activity which catalog a connection serves.
            var setup = ["SET application_name TO 'dicom-ingest/\(location.schema)'"]
            if location.schema != "public" { setup.append("SET search_path TO \(location.schema)") }
            for statement in setup {
                _ = try connection!.query(PostgresQuery(unsafeSQL: statement), logger: logger).wait()
            }
        }
        let lent = connection!
        do {
            let result = try body(lent)
            giveBack(lent)
            return result
        } catch let error as PostgresCatalogError where !error.connectionIsUsable {
            // The server dropped it (a restart, a failover, an administrator): the idle ones went the same way.
            Self.close(lent)
            for idle in state.withLock({ state in defer { state.idle = [] }; return state.idle }) { Self.close(idle) }
            throw error
        } catch {
            giveBack(lent)
            throw error
        }
    }

    private func giveBack(_ connection: PostgresConnection) {
        let keep = state.withLock { state -> Bool in
            guard !state.closed, !connection.isClosed else { return false }
            state.idle.append(connection)
            return true
        }
        if !keep { Self.close(connection) }
    }

    func close() {
        let idle = state.withLock { state -> [PostgresConnection] in
            state.closed = true
            defer { state.idle = [] }
            return state.idle
        }
        for connection in idle { Self.close(connection) }
    }

    var queryLogger: Logger { logger }

    /// Closes a connection and waits until it is (PostgresNIO requires a connection to be closed before it goes).
    private static func close(_ connection: PostgresConnection) {
        let closing: EventLoopFuture<Void> = connection.close()
        try? closing.wait()
    }
}

/// `DispatchSemaphore` is not `Sendable`-annotated; it is safe to share.
final class DispatchSemaphoreBox: @unchecked Sendable {
    private let semaphore: DispatchSemaphore

    init(value: Int) {
        semaphore = DispatchSemaphore(value: value)
    }

    func wait() { semaphore.wait() }
    func signal() { semaphore.signal() }
}

/// A statement PostgreSQL refused (the server's SQLSTATE and message), after which the connection is still usable.
struct PostgresCatalogError: Error, CustomStringConvertible {
    var sqlState: String
    var message: String
    var connectionIsUsable: Bool

    var description: String { "PostgreSQL \(sqlState): \(message)" }

    init(_ error: any Error) {
        if let error = error as? PSQLError, let info = error.serverInfo {
            sqlState = info[.sqlState] ?? "?"
            message = info[.message] ?? String(reflecting: error)
            // FATAL and PANIC end the session (57P01 when an administrator terminates it).
            connectionIsUsable = !["FATAL", "PANIC"].contains(info[.severity] ?? "")
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
struct PostgresCatalogDatabase: SQLDatabase {
    let connections: PostgresConnectionPool

    /// A read whose connection the server had dropped runs once more on a new one (reads change nothing).
    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        func attempt() throws -> T {
            try connections.withConnection { connection in
                try body(PostgresSQLConnection(connection: connection, logger: connections.queryLogger))
            }
        }
        do {
            return try attempt()
        } catch let error as PostgresCatalogError where !error.connectionIsUsable {
            return try attempt()
        }
    }

    /// A write runs once more on a new connection only when its BEGIN found the connection dropped: nothing of it
    /// ran. Past that point a dropped connection is the caller's error (a COMMIT may have landed).
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        var began = false
        do {
            return try transaction(body, began: &began)
        } catch let error as PostgresCatalogError where !error.connectionIsUsable && !began {
            return try transaction(body, began: &began)
        }
    }

    private func transaction<T>(_ body: (any SQLConnection) throws -> T, began: inout Bool) throws -> T {
        try connections.withConnection { connection in
            let sql = PostgresSQLConnection(connection: connection, logger: connections.queryLogger)
            try sql.execute("BEGIN", [])
            began = true
            do {
                let result = try body(sql)
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
        do {
            return try connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).wait()
        } catch {
            throw PostgresCatalogError(error)
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
