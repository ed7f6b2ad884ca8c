public import Foundation

/// Checks the SigV4 `Authorization` header of an incoming request, as an AWS service front end does.
public struct SigV4Verifier: Sendable {
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        case missingAuthorization
        case malformedAuthorization
        case hostNotSigned
        case unknownAccessKey(String)
        case wrongService(String)
        case requestTimeTooSkewed
        case signatureMismatch

        /// The message AWS returns for each case (the error type is `AccessDeniedException`, HTTP 403).
        public var description: String {
            switch self {
            case .missingAuthorization: return "Missing Authentication Token"
            case .malformedAuthorization: return "Authorization header requires Credential, SignedHeaders and Signature"
            case .hostNotSigned: return "'Host' must be a 'SignedHeader' in the AWS Authorization."
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

    /// What the `Authorization` and `X-Amz-Date` headers say, once checked.
    public struct Authorization: Sendable {
        public var accessKeyId: String
        var secret: String
        var day: String
        var region: String
        var amzDate: String
        var signedNames: [String]
        var signature: String
    }

    /// Checks everything but the signature: the header's form, the scope, the access key, the time, and that
    /// `host` is signed. Cheap and needs no body, so a server can refuse a request before reading its body.
    public func authorize(headers: [(String, String)], now: Date) throws(Failure) -> Authorization {
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
        let signedNames = signedHeaderList.split(separator: ";").map { $0.lowercased() }
        // Without `host` in the signature, a signed request could be replayed against another endpoint.
        guard signedNames.contains("host") else { throw .hostNotSigned }
        guard let known = credentials(accessKeyId) else { throw .unknownAccessKey(accessKeyId) }
        guard let amzDate = header("x-amz-date"), let requestTime = Self.parse(amzDate), amzDate.hasPrefix(day) else {
            throw .malformedAuthorization
        }
        guard abs(requestTime.timeIntervalSince(now)) <= maxClockSkew else { throw .requestTimeTooSkewed }
        return Authorization(
            accessKeyId: accessKeyId, secret: known.secretAccessKey, day: day, region: region, amzDate: amzDate,
            signedNames: signedNames, signature: signature)
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
        try verify(
            authorize(headers: headers, now: now), method: method, rawPath: rawPath, rawQuery: rawQuery,
            headers: headers, payloadHash: payloadHash)
    }

    /// Checks the signature of a request whose headers `authorize` accepted.
    public func verify(
        _ authorization: Authorization,
        method: String,
        rawPath: String,
        rawQuery: String?,
        headers: [(String, String)],
        payloadHash: String
    ) throws(Failure) -> String {
        let signedHeaders = headers.filter { authorization.signedNames.contains($0.0.lowercased()) }
        let query = Self.decodeQuery(rawQuery)
        // Services other than S3 encode the (already encoded) path once more for the canonical request.
        let canonicalPath = SigV4Signer.uriEncode(rawPath.isEmpty ? "/" : rawPath, keepSlash: true)
        let request = SigV4Signer.Request(
            method: method, encodedPath: canonicalPath, query: query, headers: signedHeaders, payloadHash: payloadHash)
        let (canonical, _) = SigV4Signer.canonicalRequest(request, headers: signedHeaders)
        let stringToSign = "AWS4-HMAC-SHA256\n\(authorization.amzDate)\n\(authorization.day)/\(authorization.region)/\(service)/aws4_request\n\(SigV4Signer.hexSHA256(Array(canonical.utf8)))"
        let expected = SigV4Signer.signature(
            secret: authorization.secret, day: authorization.day, region: authorization.region, service: service,
            stringToSign: stringToSign)
        guard Self.constantTimeEquals(expected, authorization.signature) else { throw .signatureMismatch }
        return authorization.accessKeyId
    }

    /// The query's names and values decoded as the routes read them: `+` is a space (form encoding, which HTTP
    /// clients write for DICOMweb query values), then `%XX`; SigV4 encodes a space as `%20`.
    static func decodeQuery(_ raw: String?) -> [(String, String)] {
        guard let raw, !raw.isEmpty else { return [] }
        func decoded(_ text: Substring) -> String {
            let spaced = String(text.map { $0 == "+" ? " " : $0 })
            return spaced.removingPercentEncoding ?? spaced
        }
        return raw.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decoded(parts[0]), parts.count > 1 ? decoded(parts[1]) : "")
        }
    }

    /// Reads an `X-Amz-Date` (`yyyyMMdd'T'HHmmss'Z'`, UTC) by hand: a `DateFormatter` per request cost more than
    /// the signature itself, and one shared formatter is not safe across threads.
    static func parse(_ amzDate: String) -> Date? {
        let bytes = Array(amzDate.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
            let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
            (1...12).contains(month), hour < 24, minute < 60, second < 60
        else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...monthDays[month - 1]).contains(day) else { return nil }
        // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = shiftedYear / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Date(timeIntervalSince1970: TimeInterval(days * 86_400 + hour * 3_600 + minute * 60 + second))
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
