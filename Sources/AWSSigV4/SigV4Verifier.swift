public import Foundation

/// Checks the SigV4 `Authorization` header of an incoming request, as an AWS service front end does.
public struct SigV4Verifier: Sendable {
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        case missingAuthorization
        case malformedAuthorization
        case unknownAccessKey(String)
        case wrongService(String)
        case requestTimeTooSkewed
        case signatureMismatch

        /// The message AWS returns for each case (the error type is `AccessDeniedException`, HTTP 403).
        public var description: String {
            switch self {
            case .missingAuthorization: return "Missing Authentication Token"
            case .malformedAuthorization: return "Authorization header requires Credential, SignedHeaders and Signature"
            case .unknownAccessKey: return "The security token included in the request is invalid"
            case .wrongService(let service): return "Credential should be scoped to correct service: \(service)"
            case .requestTimeTooSkewed: return "Signature expired: the request time is too far from the server time"
            case .signatureMismatch:
                return "The request signature we calculated does not match the signature you provided"
            }
        }
    }

    /// Secrets by access key id.
    public var credentials: @Sendable (String) -> AWSCredentials?
    public var service: String
    /// Largest accepted difference between the request's `x-amz-date` and now.
    public var maxClockSkew: TimeInterval

    public init(service: String, maxClockSkew: TimeInterval = 15 * 60, credentials: @escaping @Sendable (String) -> AWSCredentials?) {
        self.service = service
        self.maxClockSkew = maxClockSkew
        self.credentials = credentials
    }

    /// Verifies a request.
    /// - Parameters:
    ///   - rawPath: the path as received, still percent-encoded.
    ///   - rawQuery: the query string as received (without `?`), or nil.
    ///   - payloadHash: hex SHA-256 of the body.
    /// - Returns: the access key id that signed the request.
    public func verify(
        method: String,
        rawPath: String,
        rawQuery: String?,
        headers: [(String, String)],
        payloadHash: String,
        now: Date
    ) throws(Failure) -> String {
        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name }?.1
        }
        guard let authorization = header("authorization") else { throw .missingAuthorization }
        guard authorization.hasPrefix("AWS4-HMAC-SHA256 ") else { throw .malformedAuthorization }
        var fields: [String: String] = [:]
        for part in authorization.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            guard let equals = trimmed.firstIndex(of: "=") else { continue }
            fields[String(trimmed[..<equals])] = String(trimmed[trimmed.index(after: equals)...])
        }
        guard let credential = fields["Credential"], let signedHeaderList = fields["SignedHeaders"],
            let signature = fields["Signature"]
        else { throw .malformedAuthorization }
        let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, scope[4] == "aws4_request" else { throw .malformedAuthorization }
        let (accessKeyId, day, region, scopeService) = (scope[0], scope[1], scope[2], scope[3])
        guard scopeService == service else { throw .wrongService(service) }
        guard let known = credentials(accessKeyId) else { throw .unknownAccessKey(accessKeyId) }
        guard let amzDate = header("x-amz-date"), let requestTime = Self.parse(amzDate), amzDate.hasPrefix(day) else {
            throw .malformedAuthorization
        }
        guard abs(requestTime.timeIntervalSince(now)) <= maxClockSkew else { throw .requestTimeTooSkewed }

        let signedNames = signedHeaderList.split(separator: ";").map(String.init)
        let signedHeaders = headers.filter { signedNames.contains($0.0.lowercased()) }
        let query = Self.decodeQuery(rawQuery)
        // Services other than S3 encode the (already encoded) path once more for the canonical request.
        let canonicalPath = SigV4Signer.uriEncode(rawPath.isEmpty ? "/" : rawPath, keepSlash: true)
        let request = SigV4Signer.Request(
            method: method, encodedPath: canonicalPath, query: query, headers: signedHeaders, payloadHash: payloadHash)
        let (canonical, _) = SigV4Signer.canonicalRequest(request, headers: signedHeaders)
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(day)/\(region)/\(service)/aws4_request\n\(SigV4Signer.hexSHA256(Array(canonical.utf8)))"
        let expected = SigV4Signer.signature(
            secret: known.secretAccessKey, day: day, region: region, service: service, stringToSign: stringToSign)
        guard Self.constantTimeEquals(expected, signature) else { throw .signatureMismatch }
        return accessKeyId
    }

    static func decodeQuery(_ raw: String?) -> [(String, String)] {
        guard let raw, !raw.isEmpty else { return [] }
        return raw.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            return (name, value)
        }
    }

    static func parse(_ amzDate: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.date(from: amzDate)
    }

    static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
