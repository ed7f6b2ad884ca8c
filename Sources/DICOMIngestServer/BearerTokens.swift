import DICOMIngestModel
import Foundation
import JWTKit

/// OIDC bearer tokens for DICOMweb reads (`Authorization: Bearer <JWT>`), as HealthImaging takes them for data
/// stores with an authorizer: browsers cannot sign SigV4. A token is checked with vapor/jwt-kit against the keys of
/// a JWKS file (its signature, with the algorithm its key names: `none` and keys not in the set never verify), its
/// issuer, its audience, its expiry and not-before; it may read the data stores its `datastores` claim lists (an ID
/// each, or `*`) or the configuration lists for every token. Nothing a token holds is logged.
public struct BearerTokenConfiguration: Sendable {
    public var issuer: String
    public var audience: String
    /// A JWKS document (RFC 7517 §5), the issuer's public keys.
    public var jwksPath: String
    /// Data stores every valid token may read, besides those its own claim names.
    public var datastores: [String]

    public init(issuer: String, audience: String, jwksPath: String, datastores: [String] = []) {
        self.issuer = issuer
        self.audience = audience
        self.jwksPath = jwksPath
        self.datastores = datastores
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

extension BearerTokenConfiguration {
    /// The key set of `jwksPath`, read and decoded (a configuration whose keys cannot be read fails at start).
    func keySet() throws -> JWKS {
        let data = try Data(contentsOf: URL(fileURLWithPath: jwksPath))
        return try JSONDecoder().decode(JWKS.self, from: data)
    }
}

/// Verifies bearer tokens against one configuration's keys and claims.
final class BearerTokenVerifier: Sendable {
    let configuration: BearerTokenConfiguration
    let keys: JWTKeyCollection
    private let jwks: JWKS
    private let loaded = Loaded()

    /// The most bytes a token may have (a JWT of a few claims is far smaller).
    static let maximumTokenBytes = 8192

    init(configuration: BearerTokenConfiguration) throws {
        self.configuration = configuration
        jwks = try configuration.keySet()
        keys = JWTKeyCollection()
    }

    /// Adds the key set to the collection once (the collection is an actor: it cannot be filled in `init`).
    private actor Loaded {
        var done = false
        func once(_ body: () async throws -> Void) async throws {
            guard !done else { return }
            try await body()
            done = true
        }
    }

    /// Who the token names, when it is valid and may read `datastoreId`; AccessDenied saying why otherwise.
    func authorize(_ token: String, datastoreId: String) async throws -> String {
        guard token.utf8.count <= Self.maximumTokenBytes else {
            throw IngestServiceError(.accessDeniedException, "The bearer token is longer than \(Self.maximumTokenBytes) bytes")
        }
        let (keys, jwks) = (keys, jwks)
        try await loaded.once { try await keys.add(jwks: jwks) }
        let claims: BearerClaims
        do {
            claims = try await keys.verify(token, as: BearerClaims.self)
        } catch let error as JWTError {
            throw IngestServiceError(.accessDeniedException, "The bearer token is not valid: \(Self.reason(error))")
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
