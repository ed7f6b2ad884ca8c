import AsyncHTTPClient
import DICOMIngest
import AWSSigV4
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A failed S3 request: HTTP status and S3's error code and message.
public struct S3Error: Error, Hashable, Sendable, CustomStringConvertible {
    public var status: Int
    /// S3's `<Code>` (`NoSuchBucket`, `AccessDenied`, `SlowDown`, …), or a transport description.
    public var code: String
    public var message: String

    public var description: String { "S3 \(status) \(code): \(message)" }

    /// The object I/O error the engine understands.
    var objectIOError: ObjectIOError {
        switch (status, code) {
        case (403, _): return ObjectIOError(.accessDenied, "S3 refused access (\(code)): \(message)")
        case (404, _): return ObjectIOError(.notFound, message)
        default: return ObjectIOError(.io, description)
        }
    }
}

/// A small S3 client: SigV4-signed requests over AsyncHTTPClient, with jittered exponential backoff on
/// throttling, server errors and transport failures, bounded by a retry budget shared by all requests.
///
/// Calls block the calling thread (the engine's Dispatch workers), never an event loop.
public final class S3Client: Sendable {
    public let configuration: S3Configuration
    private let http: HTTPClient
    private let budget = Mutex(RetryBudget())

    struct RetryBudget {
        /// Tokens left; a retry costs 5, a success refunds 1 (capped), as the AWS SDKs' standard retry mode.
        var tokens = 500
    }

    public init(configuration: S3Configuration) {
        self.configuration = configuration
        var http = HTTPClient.Configuration(
            timeout: .init(connect: .seconds(10), read: .seconds(120)),
            connectionPool: .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maxConcurrentRequests))
        http.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
    }

    deinit {
        try? http.syncShutdown()
    }

    /// The HTTP methods S3's object and bucket operations use.
    public enum Method: String, Sendable {
        case GET, PUT, POST, DELETE, HEAD

        var http: HTTPMethod {
            switch self {
            case .GET: return .GET
            case .PUT: return .PUT
            case .POST: return .POST
            case .DELETE: return .DELETE
            case .HEAD: return .HEAD
            }
        }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    /// Sends one request, retrying what is retryable, and returns a 2xx response.
    /// - Parameters:
    ///   - key: the object key (unencoded); `nil` addresses the bucket.
    /// - Throws: `S3Error` for a non-2xx final response or a transport failure.
    public func send(
        method: Method,
        bucket: String,
        key: String? = nil,
        query: [(String, String)] = [],
        headers extraHeaders: [(String, String)] = [],
        body: [UInt8] = []
    ) throws -> Response {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try sendOnce(method: method, bucket: bucket, key: key, query: query, headers: extraHeaders, body: body)
                if (200..<300).contains(response.status) {
                    budget.withLock { $0.tokens = min(500, $0.tokens + 1) }
                    return response
                }
                let error = Self.error(from: response)
                guard Self.isRetryable(error), attempt < configuration.maxAttempts, takeRetryToken() else { throw error }
            } catch let error as S3Error {
                guard Self.isRetryable(error), attempt < configuration.maxAttempts, takeRetryToken() else { throw error }
            } catch {
                let transport = S3Error(status: 0, code: "TransportError", message: "\(error)")
                guard attempt < configuration.maxAttempts, takeRetryToken() else { throw transport }
            }
            // Full jitter: uniform in [0, min(20 s, 100 ms × 2^attempt)].
            let ceiling = min(20.0, 0.1 * pow(2.0, Double(attempt)))
            Thread.sleep(forTimeInterval: Double.random(in: 0...ceiling))
        }
    }

    private func takeRetryToken() -> Bool {
        budget.withLock { budget in
            guard budget.tokens >= 5 else { return false }
            budget.tokens -= 5
            return true
        }
    }

    static func isRetryable(_ error: S3Error) -> Bool {
        switch error.status {
        case 0, 500, 502, 503, 504: return true
        case 400: return error.code == "RequestTimeout"
        case 429: return true
        default: return error.code == "SlowDown" || error.code == "InternalError"
        }
    }

    private func sendOnce(
        method: Method,
        bucket: String,
        key: String?,
        query: [(String, String)],
        headers extraHeaders: [(String, String)],
        body: [UInt8]
    ) throws -> Response {
        let endpoint = configuration.endpoint
        let scheme = endpoint.scheme ?? "https"
        let defaultPort = scheme == "https" ? 443 : 80
        var host = endpoint.host ?? ""
        var path = endpoint.path.hasSuffix("/") ? String(endpoint.path.dropLast()) : endpoint.path
        let encodedKey = key.map { "/" + SigV4Signer.uriEncode($0, keepSlash: true) } ?? "/"
        if configuration.usePathStyle {
            path += "/" + SigV4Signer.uriEncode(bucket) + (key == nil ? "" : encodedKey)
        } else {
            host = bucket + "." + host
            path += encodedKey
        }
        let hostHeader = endpoint.port.map { $0 == defaultPort ? host : "\(host):\($0)" } ?? host
        let queryText = query.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
        let url = "\(scheme)://\(hostHeader)\(path)" + (queryText.isEmpty ? "" : "?" + queryText)

        let payloadHash = body.isEmpty ? SigV4Signer.emptyPayloadHash : SigV4Signer.hexSHA256(body)
        var headers = [("host", hostHeader), ("x-amz-content-sha256", payloadHash)] + extraHeaders
        if let credentials = configuration.credentials {
            let signer = SigV4Signer(credentials: credentials, region: configuration.region, service: "s3")
            headers += signer.sign(
                .init(method: method.rawValue, encodedPath: path, query: query, headers: headers, payloadHash: payloadHash),
                date: Date())
        }
        var request = try HTTPClient.Request(url: url, method: method.http)
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        if !body.isEmpty || method == .PUT || method == .POST {
            request.body = .bytes(body)
        }
        let response = try http.execute(request: request).wait()
        var bytes: [UInt8] = []
        if var buffer = response.body {
            bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        return Response(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: bytes)
    }

    static func error(from response: Response) -> S3Error {
        let text = String(decoding: response.body, as: UTF8.self)
        let code = XML.firstValue("Code", in: text) ?? "HTTP\(response.status)"
        var message = XML.firstValue("Message", in: text) ?? "HTTP status \(response.status)"
        if let bucket = XML.firstValue("BucketName", in: text), code == "NoSuchBucket" {
            message = "The bucket \(bucket) does not exist"
        }
        return S3Error(status: response.status, code: code, message: message)
    }
}

/// Just enough XML for S3's responses: the text of `<Tag>` elements, entities decoded.
enum XML {
    static func values(_ tag: String, in text: String) -> [String] {
        var result: [String] = []
        var rest = text[...]
        let open = "<\(tag)>"
        let close = "</\(tag)>"
        while let start = rest.range(of: open), let end = rest[start.upperBound...].range(of: close) {
            result.append(decode(String(rest[start.upperBound..<end.lowerBound])))
            rest = rest[end.upperBound...]
        }
        return result
    }

    static func firstValue(_ tag: String, in text: String) -> String? {
        values(tag, in: text).first
    }

    /// The raw inner text of each `<tag>…</tag>` block (not decoded), for nested parsing.
    static func blocks(_ tag: String, in text: String) -> [Substring] {
        var result: [Substring] = []
        var rest = text[...]
        while let start = rest.range(of: "<\(tag)>"), let end = rest[start.upperBound...].range(of: "</\(tag)>") {
            result.append(rest[start.upperBound..<end.lowerBound])
            rest = rest[end.upperBound...]
        }
        return result
    }

    static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == "&", let semicolon = text[index...].firstIndex(of: ";") {
                let entity = text[text.index(after: index)..<semicolon]
                var replacement: String?
                switch entity {
                case "amp": replacement = "&"
                case "lt": replacement = "<"
                case "gt": replacement = ">"
                case "quot": replacement = "\""
                case "apos": replacement = "'"
                default:
                    if entity.hasPrefix("#x"), let value = UInt32(entity.dropFirst(2), radix: 16), let scalar = Unicode.Scalar(value) {
                        replacement = String(scalar)
                    } else if entity.hasPrefix("#"), let value = UInt32(entity.dropFirst()), let scalar = Unicode.Scalar(value) {
                        replacement = String(scalar)
                    }
                }
                if let replacement {
                    out += replacement
                    index = text.index(after: semicolon)
                    continue
                }
            }
            out.append(text[index])
            index = text.index(after: index)
        }
        return out
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
