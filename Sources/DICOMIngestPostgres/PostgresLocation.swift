import Foundation
import NIOSSL
import PostgresNIO

/// A catalog's `postgres://` URL, parsed.
struct PostgresLocation: Sendable {
    struct InvalidURL: Error, CustomStringConvertible {
        var description: String
    }

    var host: String
    var port: Int
    var user: String
    var password: String?
    var database: String
    var sslMode: String
    var schema: String
    var poolSize: Int
    /// Seconds a statement, or the wait for a connection, may take (`timeout`, default 60).
    var timeout: Double
    /// Seconds a call that failed for a connection reason is tried again before it fails (`retry`, default 60).
    var retrySeconds: Double

    init(url: String) throws {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
            throw InvalidURL(description: "a catalog URL reads postgres://user:password@host:port/database")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = components.port ?? 5432
        user = components.user.flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        password = components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? user : path
        var items: [String: String] = [:]
        for item in components.queryItems ?? [] { items[item.name] = item.value ?? "" }
        sslMode = items["sslmode"] ?? "prefer"
        guard ["disable", "prefer", "require", "verify-full"].contains(sslMode) else {
            throw InvalidURL(description: "sslmode must be disable, prefer, require or verify-full, not \(sslMode)")
        }
        schema = items["schema"] ?? "public"
        // The schema is written into statements (SET search_path), so only plain identifiers are taken.
        guard !schema.isEmpty, schema.count <= 63,
            schema.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") }),
            !schema.first!.isNumber
        else { throw InvalidURL(description: "schema must be a plain identifier (letters, digits, _), not \(schema)") }
        poolSize = Int(items["pool"] ?? "8") ?? 0
        guard (1...256).contains(poolSize) else { throw InvalidURL(description: "pool must be a number of connections from 1 to 256") }
        timeout = Double(items["timeout"] ?? "60") ?? 0
        guard timeout >= 1 && timeout <= 3600 else { throw InvalidURL(description: "timeout must be seconds from 1 to 3600") }
        retrySeconds = Double(items["retry"] ?? "60") ?? -1
        guard retrySeconds >= 0 && retrySeconds <= 86400 else { throw InvalidURL(description: "retry must be seconds from 0 to 86400") }
    }

    /// The URL without its password, for messages.
    var redacted: String { "postgres://\(user)@\(host):\(port)/\(database)?schema=\(schema)" }

    func clientConfiguration() throws -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case "disable":
            tls = .disable
        case "verify-full":
            tls = .require(.makeClientConfiguration())
        default:
            // libpq's `prefer` and `require` encrypt without checking the server's certificate.
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            tls = sslMode == "require" ? .require(configuration) : .prefer(configuration)
        }
        return PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
    }
}
