public import DICOMIngest

/// A value bound to, or read from, a catalog statement: the types both SQLite and PostgreSQL store natively.
/// Booleans are integers 0 and 1 on both backends.
public enum SQLValue: Hashable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A Swift value that binds as an `SQLValue`.
public protocol SQLValueConvertible {
    var sqlValue: SQLValue { get }
}

extension String: SQLValueConvertible {
    public var sqlValue: SQLValue { .text(self) }
}

extension Int: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
}

extension Int64: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(self) }
}

extension Double: SQLValueConvertible {
    public var sqlValue: SQLValue { .real(self) }
}

extension Bool: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(self ? 1 : 0) }
}

extension Array: SQLValueConvertible where Element == UInt8 {
    public var sqlValue: SQLValue { .blob(self) }
}

extension SQLValue: SQLValueConvertible {
    public var sqlValue: SQLValue { self }
}

/// One result row: values by column name.
public struct SQLRow: Sendable {
    public let names: [String]
    public let values: [SQLValue]

    public init(names: [String], values: [SQLValue]) {
        self.names = names
        self.values = values
    }

    public subscript(column: String) -> SQLValue {
        guard let index = names.firstIndex(of: column) else { return .null }
        return values[index]
    }

    public func string(_ column: String) -> String {
        optionalString(column) ?? ""
    }

    public func optionalString(_ column: String) -> String? {
        switch self[column] {
        case .text(let text): text
        case .blob(let bytes): String(decoding: bytes, as: UTF8.self)
        case .integer(let number): String(number)
        case .real(let number): String(number)
        case .null: nil
        }
    }

    public func int(_ column: String) -> Int {
        optionalInt(column) ?? 0
    }

    public func optionalInt(_ column: String) -> Int? {
        switch self[column] {
        case .integer(let number): Int(truncatingIfNeeded: number)
        case .real(let number): number.isFinite && abs(number) < 9e18 ? Int(number) : nil
        case .text(let text): Int(text)
        case .null, .blob: nil
        }
    }

    public func double(_ column: String) -> Double {
        optionalDouble(column) ?? 0
    }

    public func optionalDouble(_ column: String) -> Double? {
        switch self[column] {
        case .real(let number): number
        case .integer(let number): Double(number)
        case .text(let text): Double(text)
        case .null, .blob: nil
        }
    }

    public func bool(_ column: String) -> Bool {
        int(column) != 0
    }

    /// A blob (or text, as its UTF-8) column; nil when NULL.
    public func bytes(_ column: String) -> [UInt8]? {
        switch self[column] {
        case .blob(let bytes): bytes
        case .text(let text): Array(text.utf8)
        case .null, .integer, .real: nil
        }
    }
}

/// Where a catalog's SQL differs between backends.
public enum SQLDialect: Sendable {
    case sqlite
    case postgres
}

/// One connection inside a transaction (or, for reads, a consistent snapshot). Statements are written with
/// PostgreSQL's numbered parameters (`$1`, `$2`, a number used again binds the same value); the SQLite adapter
/// turns them into `?1`, `?2`.
public protocol SQLConnection {
    var dialect: SQLDialect { get }
    /// Runs a statement and returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: [SQLValue]) throws -> Int
    func rows(_ sql: String, _ arguments: [SQLValue]) throws -> [SQLRow]
    /// Holds `key` until the transaction ends, so that writers of one key take turns. SQLite has one writer at a
    /// time already; PostgreSQL takes a transaction-scoped advisory lock.
    func lock(_ key: String) throws
}

extension SQLConnection {
    @discardableResult
    public func execute(_ sql: String, _ arguments: (any SQLValueConvertible)?...) throws -> Int {
        try execute(sql, arguments.map { $0?.sqlValue ?? .null })
    }

    public func rows(_ sql: String, _ arguments: (any SQLValueConvertible)?...) throws -> [SQLRow] {
        try rows(sql, arguments.map { $0?.sqlValue ?? .null })
    }

    public func row(_ sql: String, _ arguments: (any SQLValueConvertible)?...) throws -> SQLRow? {
        try rows(sql, arguments.map { $0?.sqlValue ?? .null }).first
    }
}

/// A catalog database: reads and write transactions on a connection of its own.
public protocol SQLDatabase: Sendable {
    /// Runs `body` on a connection that sees committed data only (each statement, or a snapshot).
    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Runs `body` in one transaction, committed when it returns and rolled back when it throws.
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T
}
