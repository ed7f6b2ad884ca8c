public import AWSSigV4
public import Foundation

/// Where and how to reach S3, resolved the way the AWS SDKs and CLI resolve it.
///
/// Endpoint: `--endpoint-url`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else the profile's
/// `endpoint_url`, else `https://s3.<region>.amazonaws.com`. Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the
/// profile's `region`, else `us-east-1`. Credentials: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
/// (+ `AWS_SESSION_TOKEN`), else the profile (`AWS_PROFILE`, default `default`) in `~/.aws/credentials`
/// (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config` (`AWS_CONFIG_FILE`).
public struct S3Configuration: Sendable {
    public var endpoint: URL
    public var region: String
    /// `nil` sends unsigned requests (public buckets).
    public var credentials: AWSCredentials?
    /// Path-style URLs (`endpoint/bucket/key`) rather than virtual-hosted (`bucket.endpoint/key`); the default
    /// for custom endpoints, where bucket host names rarely resolve.
    public var usePathStyle: Bool
    /// Attempts per request (the first included) for retryable failures.
    public var maxAttempts: Int
    /// Requests in flight at once over the client's connection pool.
    public var maxConcurrentRequests: Int
    /// Objects per ListObjectsV2 page (1–1000).
    public var listPageSize: Int

    public init(
        endpoint: URL, region: String, credentials: AWSCredentials?, usePathStyle: Bool, maxAttempts: Int = 5,
        maxConcurrentRequests: Int = 32, listPageSize: Int = 1000
    ) {
        self.endpoint = endpoint
        self.region = region
        self.credentials = credentials
        self.usePathStyle = usePathStyle
        self.maxAttempts = maxAttempts
        self.maxConcurrentRequests = maxConcurrentRequests
        self.listPageSize = listPageSize
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Resolves the configuration from the environment and the shared AWS files.
    public static func resolve(
        endpointOverride: String? = nil,
        environment: [String: String]? = nil
    ) throws -> S3Configuration {
        let environment = environment ?? ProcessInfo.processInfo.environment
        let home = environment["HOME"] ?? NSHomeDirectory()
        let profile = environment["AWS_PROFILE"] ?? "default"
        let credentialsFile = INIFile(path: environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials")
        let configFile = INIFile(path: environment["AWS_CONFIG_FILE"] ?? home + "/.aws/config")
        let configSection = profile == "default" ? "default" : "profile \(profile)"
        func profileValue(_ key: String) -> String? {
            credentialsFile.value(section: profile, key: key) ?? configFile.value(section: configSection, key: key)
        }

        let region = [environment["AWS_REGION"], environment["AWS_DEFAULT_REGION"], profileValue("region")]
            .compactMap { $0 }.first { !$0.isEmpty } ?? "us-east-1"
        var credentials: AWSCredentials?
        if let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !key.isEmpty {
            credentials = AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
        } else if let key = profileValue("aws_access_key_id"), let secret = profileValue("aws_secret_access_key") {
            credentials = AWSCredentials(accessKeyId: key, secretAccessKey: secret, sessionToken: profileValue("aws_session_token"))
        }
        let custom = [endpointOverride, environment["AWS_ENDPOINT_URL_S3"], environment["AWS_ENDPOINT_URL"], profileValue("endpoint_url")]
            .compactMap { $0 }.first { !$0.isEmpty }
        let endpointText = custom ?? "https://s3.\(region).amazonaws.com"
        guard let endpoint = URL(string: endpointText), let scheme = endpoint.scheme, ["http", "https"].contains(scheme),
            endpoint.host != nil
        else { throw Invalid(description: "invalid S3 endpoint URL \(endpointText)") }
        return S3Configuration(endpoint: endpoint, region: region, credentials: credentials, usePathStyle: custom != nil)
    }
}

/// The `[section]` / `key = value` files of the AWS CLI.
struct INIFile {
    private var sections: [String: [String: String]] = [:]

    init(path: String) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        var current = ""
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current, default: [:]][key] = value
        }
    }

    func value(section: String, key: String) -> String? {
        sections[section]?[key]
    }
}

/// An `s3://bucket/prefix` URI.
public struct S3Location: Hashable, Sendable {
    public var bucket: String
    /// The key prefix, without a leading `/` (may be empty).
    public var prefix: String

    public init?(uri: String) {
        guard uri.hasPrefix("s3://") else { return nil }
        let rest = uri.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        guard !bucket.isEmpty else { return nil }
        self.bucket = String(bucket)
        self.prefix = String(rest.dropFirst(bucket.count).drop { $0 == "/" })
    }

    /// The prefix treated as a folder: with exactly one trailing `/` (spec §2.1 joining rule), or empty.
    public var folderPrefix: String {
        prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
    }
}
