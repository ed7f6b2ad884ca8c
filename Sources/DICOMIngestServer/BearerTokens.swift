import AsyncHTTPClient
import DICOMIngestModel
import Foundation
import JWTKit
import NIOCore
import NIOHTTP1
import Synchronization

/// OIDC bearer tokens for DICOMweb reads (`Authorization: Bearer <JWT>`), as HealthImaging takes them for data
/// stores with an authorizer: browsers cannot sign SigV4. A token is checked with vapor/jwt-kit against the keys of
/// a JWKS (its signature, with the algorithm its key names: `none` and keys not in the set never verify), its
/// issuer, its audience, its expiry and not-before; it may read the data stores its `datastores` claim lists (an ID
/// each, or `*`) or the configuration lists for every token. Nothing a token holds is logged.
public struct BearerTokenConfiguration: Sendable {
    public var issuer: String
    public var audience: String
    /// The issuer's public keys (RFC 7517 §5): a JWKS file's path, or its URL (`https://`, or `http://` on
    /// loopback), which is fetched at start and again as the issuer rotates its keys (`BearerTokenVerifier`).
    public var jwks: String
    /// Data stores every valid token may read, besides those its own claim names.
    public var datastores: [String]

    public init(issuer: String, audience: String, jwks: String, datastores: [String] = []) {
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.datastores = datastores
    }

    /// The key set's URL when `jwks` is one; nil for a file.
    /// - Throws: for a URL of another scheme, or plain HTTP to another host (keys could be swapped on the way).
    func jwksURL() throws -> URL? {
        guard jwks.contains("://") else { return nil }
        guard let url = URL(string: jwks), let host = url.host, ["http", "https"].contains(url.scheme ?? "") else {
            throw IngestServiceError.validation("oidc jwks \"\(jwks.prefix(200))\" is neither a file nor an http(s) URL")
        }
        guard url.scheme == "https" || ["127.0.0.1", "::1", "localhost"].contains(host) else {
            throw IngestServiceError.validation("oidc jwks must be fetched over https (plain http only from loopback)")
        }
        return url
    }

    /// The key set of a JWKS file, read and decoded (a configuration whose keys cannot be read fails at start).
    func fileKeySet() throws -> JWKS {
        let data = try Data(contentsOf: URL(fileURLWithPath: jwks))
        return try JSONDecoder().decode(JWKS.self, from: data)
    }
}

/// The claims a token is read for.
struct BearerClaims: JWTPayload {
    var iss: IssuerClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    var nbf: NotBeforeClaim?
    var sub: SubjectClaim?
    var datastores: [String]?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        try nbf?.verifyNotBefore()
    }
}

/// Verifies bearer tokens against one configuration's keys and claims. Keys from a URL are fetched again when they
/// are older than `refreshInterval`, and when a token names a key the set lacks (the issuer rotated its keys), at
/// most once per `unknownKeyRefreshInterval` so that tokens naming made-up keys cannot make us flood the issuer. A
/// fetch that fails keeps the keys fetched before.
final class BearerTokenVerifier: Sendable {
    let configuration: BearerTokenConfiguration
    private let url: URL?
    private let state = Mutex(State())

    private struct State {
        var keys: JWTKeyCollection?
        /// The key IDs of the set.
        var kids: Set<String> = []
        var fetchedAt = -Double.infinity
        var forcedAt = -Double.infinity
    }

    /// The most bytes a token may have (a JWT of a few claims is far smaller).
    static let maximumTokenBytes = 8192
    /// The largest key set fetched.
    static let maximumKeySetBytes = 1 << 20
    static let refreshInterval: Double = 300
    static let unknownKeyRefreshInterval: Double = 10

    init(configuration: BearerTokenConfiguration) throws {
        self.configuration = configuration
        url = try configuration.jwksURL()
        if url == nil { _ = try configuration.fileKeySet() }
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// The keys to verify with: the file's (loaded once), or the URL's, fetched when there are none yet, when they
    /// are stale, or (`unknownKey`) when a token named one they lack.
    func keys(unknownKey: Bool = false) async throws -> (keys: JWTKeyCollection, kids: Set<String>) {
        let now = Self.now()
        let (current, kids, fetch) = state.withLock { state -> (JWTKeyCollection?, Set<String>, Bool) in
            var fetch = state.keys == nil || (url != nil && now - state.fetchedAt > Self.refreshInterval)
            if unknownKey, url != nil, now - state.forcedAt > Self.unknownKeyRefreshInterval {
                state.forcedAt = now
                fetch = true
            }
            if fetch { state.fetchedAt = now }
            return (state.keys, state.kids, fetch)
        }
        guard fetch else { return (current!, kids) }
        do {
            let jwks = try await keySet()
            let keys = JWTKeyCollection()
            try await keys.add(jwks: jwks)
            let fetchedKids = Set(jwks.keys.compactMap { $0.keyIdentifier?.string })
            state.withLock {
                $0.keys = keys
                $0.kids = fetchedKids
            }
            return (keys, fetchedKids)
        } catch {
            if let current { return (current, kids) }
            throw IngestServiceError(.accessDeniedException, "The issuer's keys cannot be read: \(error)")
        }
    }

    /// The key set: the file's, or the URL's body (at most `maximumKeySetBytes`, within 10 s).
    func keySet() async throws -> JWKS {
        guard let url else { return try configuration.fileKeySet() }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        guard response.status == .ok else {
            throw IngestServiceError.internal("GET \(url.absoluteString) answered \(response.status.code)")
        }
        let body = try await response.body.collect(upTo: Self.maximumKeySetBytes)
        return try JSONDecoder().decode(JWKS.self, from: Data(Array(buffer: body)))
    }

    /// Who the token names, when it is valid and may read `datastoreId`; AccessDenied saying why otherwise.
    func authorize(_ token: String, datastoreId: String) async throws -> String {
        guard token.utf8.count <= Self.maximumTokenBytes else {
            throw IngestServiceError(.accessDeniedException, "The bearer token is longer than \(Self.maximumTokenBytes) bytes")
        }
        let claims: BearerClaims
        do {
            // A key ID the set lacks: the issuer may have rotated its keys, so a URL's set is fetched again. A
            // token naming a key ID is verified only by that key (jwt-kit would try the set's default key).
            var (keys, kids) = try await keys()
            let kid = Self.keyID(token)
            if let kid, !kids.contains(kid) { (keys, kids) = try await self.keys(unknownKey: true) }
            if let kid, !kids.contains(kid), !kids.isEmpty {
                throw IngestServiceError(.accessDeniedException, "The bearer token is not valid: it names no key of the configured set")
            }
            claims = try await keys.verify(token, as: BearerClaims.self)
        } catch let error as JWTError {
            throw IngestServiceError(.accessDeniedException, "The bearer token is not valid: \(Self.reason(error))")
        } catch let error as IngestServiceError {
            throw error
        } catch {
            throw IngestServiceError(.accessDeniedException, "The bearer token is not valid: it is not a signed JWT")
        }
        guard claims.iss.value == configuration.issuer else {
            throw IngestServiceError(.accessDeniedException, "The bearer token is not valid: its issuer is not the one configured")
        }
        guard claims.aud.value.contains(configuration.audience) else {
            throw IngestServiceError(.accessDeniedException, "The bearer token is not valid: it is not meant for this audience")
        }
        let allowed = configuration.datastores + (claims.datastores ?? [])
        guard allowed.contains("*") || allowed.contains(datastoreId) else {
            throw IngestServiceError(.accessDeniedException, "The bearer token may not read data store \(datastoreId)")
        }
        return "bearer:" + (claims.sub?.value ?? "")
    }

    /// The `kid` of a token's header (its first dot-separated part, base64url JSON), if it names one.
    static func keyID(_ token: String) -> String? {
        guard let header = token.split(separator: ".", maxSplits: 1).first, header.utf8.count <= 2048 else { return nil }
        var base64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["kid"] as? String
    }

    /// The kind of failure, never the token's content.
    static func reason(_ error: JWTError) -> String {
        let kind = error.errorType
        if kind == .claimVerificationFailure { return "a time claim says it is expired or not yet valid" }
        if kind == .signatureVerificationFailed { return "its signature does not verify" }
        if kind == .missingKIDHeader || kind == .unknownKID { return "it names no key of the configured set" }
        if kind == .malformedToken { return "it is not a well-formed JWT" }
        return "it does not verify (\(kind))"
    }
}
