import AWSSigV4
import Foundation
import DICOMIngestModel

/// Settings of `dicom-ingest serve`: who may call, which roles they may pass, what those roles may read and
/// write, and the limits.
public struct ServerConfiguration: Sendable {
    /// A caller: its SigV4 secret and the `dataAccessRoleArn`s it may use (`nil`: any).
    public struct Identity: Sendable {
        public var secretAccessKey: String
        public var allowedRoles: [String]?

        public init(secretAccessKey: String, allowedRoles: [String]? = nil) {
            self.secretAccessKey = secretAccessKey
            self.allowedRoles = allowedRoles
        }
    }

    /// What a `dataAccessRoleArn` may read and write: URI prefixes (`s3://bucket/`, `file:///data/`); `nil`: anything.
    public struct Role: Sendable {
        public var readPrefixes: [String]?
        public var writePrefixes: [String]?

        public init(readPrefixes: [String]? = nil, writePrefixes: [String]? = nil) {
            self.readPrefixes = readPrefixes
            self.writePrefixes = writePrefixes
        }
    }

    public var host: String
    public var port: Int
    /// Callers by access key id; empty disables authentication (only for tests and local experiments).
    public var identities: [String: Identity]
    /// Role policies by ARN; `*` stands for any role not listed. A role that is neither listed nor covered by `*`
    /// is refused (AccessDeniedException), as IAM refuses a role it does not know.
    public var roles: [String: Role]
    /// The only folders under which `file://` prefixes may be read or written (resolved as `NormalizedPrefix`
    /// does); empty refuses every local prefix, so that callers of a server cannot reach its files.
    public var localRoots: [String]
    /// The region in ARNs and accepted in signatures.
    public var region: String
    /// The account in ARNs.
    public var accountId: String
    /// Largest request body accepted.
    public var maxBodySize: Int
    /// Connections open at once; past it the server stops accepting until one closes.
    public var maxConnections: Int
    /// Seconds a connection may stay without a request before it is closed.
    public var idleTimeout: Double
    /// Seconds a request's body may take to arrive once its headers are accepted.
    public var bodyReadTimeout: Double
    /// Import jobs running at once per data store (HealthImaging's quota is 100); more is ServiceQuotaExceeded.
    public var maxConcurrentJobsPerDatastore: Int
    /// StartDICOMImportJob calls per second (token bucket with a burst of twice that); more is Throttling.
    public var startJobRate: Double
    /// Origins whose browser pages may call the API (CORS, for a viewer served elsewhere): exact origins such as
    /// `http://localhost:3000`, or `*` for any; none by default.
    public var corsOrigins: [String] = []
    /// OIDC bearer tokens DICOMweb reads may carry instead of a SigV4 signature; none accepted by default.
    public var bearerTokens: BearerTokenConfiguration?
    /// DICOMweb reads from this machine (a loopback peer, no `Authorization` header) need no credentials, for a
    /// local viewer; off by default, and never for other peers, other requests or writes.
    public var unauthenticatedLoopbackReads = false
    /// The URL clients reach this server by, when that is not what their requests name (behind a proxy that
    /// rewrites the host, the port or the scheme): `https://pacs.example.org` or `https://gateway/imaging`.
    /// DICOMweb's RetrieveURLs and BulkDataURIs are built on it (`<publicURL>/datastore/{id}/…`) instead of the
    /// request's `Host`.
    public var publicURL: String?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, identities: [String: Identity] = [:], roles: [String: Role] = [:],
        localRoots: [String] = [], region: String = "us-east-1", accountId: String = "000000000000", maxBodySize: Int = 1 << 20,
        maxConcurrentJobsPerDatastore: Int = 100, startJobRate: Double = 10,
        maxConnections: Int = 256, idleTimeout: Double = 60, bodyReadTimeout: Double = 30
    ) {
        self.host = host
        self.port = port
        self.identities = identities
        self.roles = roles
        self.localRoots = localRoots
        self.region = region
        self.accountId = accountId
        self.maxBodySize = maxBodySize
        self.maxConnections = maxConnections
        self.idleTimeout = idleTimeout
        self.bodyReadTimeout = bodyReadTimeout
        self.maxConcurrentJobsPerDatastore = maxConcurrentJobsPerDatastore
        self.startJobRate = startJobRate
    }

    /// The configuration of a server started without `--config`: the identity in its own environment and, when it
    /// listens on loopback only, any role that identity passes, reading and writing any S3 prefix (no local folder),
    /// so that the README's boto3 example works as written; a server reachable from elsewhere accepts no role
    /// until its configuration names some.
    public static func zeroConfiguration(host: String, port: Int, environment: [String: String]) -> ServerConfiguration {
        var configuration = ServerConfiguration(host: host, port: port, identities: environmentIdentities(environment))
        if ["127.0.0.1", "::1", "localhost"].contains(host) { configuration.roles = ["*": Role()] }
        return configuration
    }

    /// The zero-configuration identity: the one in the server's own environment, as local AWS emulators do.
    public static func environmentIdentities(_ environment: [String: String]) -> [String: Identity] {
        guard let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !key.isEmpty
        else { return [:] }
        return [key: Identity(secretAccessKey: secret)]
    }

    /// Reads a JSON configuration file:
    /// `{"host","port","region","accountId","maxBodySize","maxConcurrentJobsPerDatastore","startJobRate",
    ///   "maxConnections","idleTimeout","bodyReadTimeout",
    ///   "identities":{"AKID":{"secretAccessKey":"…","allowedRoles":["arn:…"]}},
    ///   "roles":{"arn:…":{"readPrefixes":["s3://in/"],"writePrefixes":["s3://out/"]}, "*":{…}},
    ///   "localRoots":["/data/"], "corsOrigins":["http://localhost:3000"],
    ///   "oidc":{"issuer":"https://idp/","audience":"dicomweb","jwks":"/etc/jwks.json or https://idp/jwks","datastores":["…"]},
    ///   "unauthenticatedLoopbackReads":false, "publicURL":"https://pacs.example.org"}`.
    public static func load(path: String, base: ServerConfiguration) throws -> ServerConfiguration {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: path])
        }
        var configuration = base
        if let host = object["host"] as? String { configuration.host = host }
        if let port = object["port"] as? Int { configuration.port = port }
        if let region = object["region"] as? String { configuration.region = region }
        if let account = object["accountId"] as? String { configuration.accountId = account }
        if let size = object["maxBodySize"] as? Int { configuration.maxBodySize = size }
        if let connections = object["maxConnections"] as? Int { configuration.maxConnections = max(1, connections) }
        if let seconds = (object["idleTimeout"] as? NSNumber)?.doubleValue { configuration.idleTimeout = seconds }
        if let seconds = (object["bodyReadTimeout"] as? NSNumber)?.doubleValue { configuration.bodyReadTimeout = seconds }
        if let jobs = object["maxConcurrentJobsPerDatastore"] as? Int { configuration.maxConcurrentJobsPerDatastore = jobs }
        if let rate = object["startJobRate"] as? Double { configuration.startJobRate = rate }
        if let roots = object["localRoots"] as? [String] { configuration.localRoots = roots }
        if let origins = object["corsOrigins"] as? [String] { configuration.corsOrigins = origins }
        if let open = object["unauthenticatedLoopbackReads"] as? Bool { configuration.unauthenticatedLoopbackReads = open }
        if let url = object["publicURL"] as? String {
            guard let parsed = URLComponents(string: url), ["http", "https"].contains(parsed.scheme ?? ""),
                !(parsed.host ?? "").isEmpty, parsed.query == nil, parsed.fragment == nil, parsed.user == nil
            else {
                throw CocoaError(.fileReadCorruptFile, userInfo: [
                    NSFilePathErrorKey: path,
                    NSLocalizedDescriptionKey: "publicURL is an http(s) URL without query, fragment or user: \(url.prefix(200))",
                ])
            }
            configuration.publicURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        if let oidc = object["oidc"] as? [String: Any] {
            guard let issuer = oidc["issuer"] as? String, let audience = oidc["audience"] as? String,
                let jwks = oidc["jwks"] as? String
            else { throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "oidc needs issuer, audience and jwks"]) }
            let bearer = BearerTokenConfiguration(
                issuer: issuer, audience: audience, jwks: jwks, datastores: oidc["datastores"] as? [String] ?? [])
            // A file is read now; a URL is fetched when the server starts (`IngestService.prepare`).
            if try bearer.jwksURL() == nil { _ = try bearer.fileKeySet() }
            configuration.bearerTokens = bearer
        }
        if let identities = object["identities"] as? [String: [String: Any]] {
            for (key, value) in identities {
                guard let secret = value["secretAccessKey"] as? String else { continue }
                configuration.identities[key] = Identity(secretAccessKey: secret, allowedRoles: value["allowedRoles"] as? [String])
            }
        }
        if let roles = object["roles"] as? [String: [String: Any]] {
            for (arn, value) in roles {
                configuration.roles[arn] = Role(
                    readPrefixes: value["readPrefixes"] as? [String], writePrefixes: value["writePrefixes"] as? [String])
            }
        }
        return configuration
    }

    var arn: ResourceARN { ResourceARN(region: region, accountId: accountId) }
}
