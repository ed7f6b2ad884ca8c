import DICOMIngestS3
@testable import AWSSigV4
import Foundation
import Testing

@Suite struct SigV4SignerTests {
    /// 2015-08-30T12:36:00Z, the date of the AWS SigV4 test suite.
    static let suiteDate = Date(timeIntervalSince1970: 1_440_938_160)
    static let suiteCredentials = AWSCredentials(
        accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

    static func authorization(_ headers: [(String, String)]) -> String? {
        headers.first { $0.0 == "Authorization" }?.1
    }

    @Test(arguments: [
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ])
    func matchesThePublishedVanillaVectors(method: String, signature: String) throws {
        let signer = SigV4Signer(credentials: Self.suiteCredentials, region: "us-east-1", service: "service")
        let headers = signer.sign(
            .init(method: method, encodedPath: "/", query: [], headers: [("host", "example.amazonaws.com")], payloadHash: SigV4Signer.emptyPayloadHash),
            date: Self.suiteDate)
        #expect(headers.first { $0.0 == "x-amz-date" }?.1 == "20150830T123600Z")
        #expect(Self.authorization(headers) == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=\(signature)")
    }

    /// botocore's `S3SigV4Auth` is the oracle for S3 requests: keys with spaces and non-ASCII characters, query
    /// parameters that need encoding, a range header, a session token.
    @Test func agreesWithBotocoreOnS3Requests() throws {
        let cases: [(method: String, key: String, query: [(String, String)], extra: [(String, String)], token: String?)] = [
            ("GET", "dicom input/ünïcode ✓/a+b~c.dcm", [], [("range", "bytes=0-65535")], nil),
            ("GET", "", [("list-type", "2"), ("prefix", "in/a b/"), ("continuation-token", "x/y=z+1")], [], nil),
            ("PUT", "out/FAILURE/failure.ndjson", [("partNumber", "3"), ("uploadId", "abc/def==")], [], "session-token-value"),
        ]
        let script = """
            import json, sys
            from unittest import mock
            import datetime
            from botocore.auth import S3SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            cases = json.loads(sys.stdin.read())
            out = []
            fixed = datetime.datetime(2015, 8, 30, 12, 36, 0)
            with mock.patch('botocore.auth.get_current_datetime', return_value=fixed):
                for case in cases:
                    creds = Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', case['token'])
                    request = AWSRequest(method=case['method'], url=case['url'], headers=case['headers'])
                    S3SigV4Auth(creds, 's3', 'us-east-1').add_auth(request)
                    out.append(request.headers['Authorization'])
            print(json.dumps(out))
            """
        var payload: [[String: Any]] = []
        var ours: [String] = []
        for testCase in cases {
            let path = "/example-bucket" + (testCase.key.isEmpty ? "" : "/" + SigV4Signer.uriEncode(testCase.key, keepSlash: true))
            let query = testCase.query.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
            let headers = [("host", "127.0.0.1:9000"), ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash)] + testCase.extra
            payload.append([
                "method": testCase.method, "url": "http://127.0.0.1:9000\(path)" + (query.isEmpty ? "" : "?" + query),
                "headers": Dictionary(uniqueKeysWithValues: headers.map { ($0.0, $0.1) }),
                "token": testCase.token as Any,
            ])
            var credentials = Self.suiteCredentials
            credentials.sessionToken = testCase.token
            let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3")
            let signed = signer.sign(
                .init(method: testCase.method, encodedPath: path, query: testCase.query, headers: headers, payloadHash: SigV4Signer.emptyPayloadHash),
                date: Self.suiteDate)
            ours.append(try #require(Self.authorization(signed)))
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: payload))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "botocore oracle failed")
        let botocore = try #require(try JSONSerialization.jsonObject(with: data) as? [String])
        #expect(ours == botocore)
    }

    /// The hand-written `X-Amz-Date` reader agrees with a `DateFormatter` on every day from 1899 to 2101 (leap
    /// days and century years included) and refuses what is not a real UTC time of that exact form.
    @Test func readsAmzDatesLikeADateFormatter() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        var date = formatter.date(from: "18990101T000000Z")!
        let end = formatter.date(from: "21020101T000000Z")!
        var checked = 0
        while date < end {
            let shifted = date.addingTimeInterval(TimeInterval((checked * 7_919) % 86_400))
            let text = formatter.string(from: shifted)
            #expect(SigV4Verifier.parse(text) == shifted, "\(text)")
            date = date.addingTimeInterval(86_400)
            checked += 1
        }
        #expect(checked > 73_000)
        for bad in ["20230229T000000Z", "21000229T000000Z", "20241301T000000Z", "20241200T000000Z", "20240101T240000Z",
            "20240101T000060Z", "20240101 000000Z", "20240101T000000", "2024-01-01T00:00:00Z", "2024010１T000000Z", ""] {
            #expect(SigV4Verifier.parse(bad) == nil, "\(bad)")
        }
        #expect(SigV4Verifier.parse("20000229T235959Z") == Date(timeIntervalSince1970: 951_868_799))
    }

    @Test func encodesLikeRFC3986() {
        #expect(SigV4Signer.uriEncode("a b/ü~_-.") == "a%20b%2F%C3%BC~_-.")
        #expect(SigV4Signer.uriEncode("a b/c", keepSlash: true) == "a%20b/c")
    }

    @Test func resolvesConfigurationFromEnvironmentAndProfiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("aws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = defaultsecret\n[other]\naws_access_key_id = OTHERKEY\naws_secret_access_key = othersecret\n"
            .write(to: folder.appendingPathComponent("credentials"), atomically: true, encoding: .utf8)
        try "[profile other]\nregion = eu-west-2\nendpoint_url = http://127.0.0.1:4566\n"
            .write(to: folder.appendingPathComponent("config"), atomically: true, encoding: .utf8)
        let files = ["AWS_SHARED_CREDENTIALS_FILE": folder.path + "/credentials", "AWS_CONFIG_FILE": folder.path + "/config", "HOME": folder.path]

        let profile = try S3Configuration.resolve(environment: files.merging(["AWS_PROFILE": "other"]) { $1 })
        #expect(profile.credentials?.accessKeyId == "OTHERKEY")
        #expect(profile.region == "eu-west-2")
        #expect(profile.endpoint.absoluteString == "http://127.0.0.1:4566")
        #expect(profile.usePathStyle)

        let environment = try S3Configuration.resolve(environment: files.merging([
            "AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret", "AWS_SESSION_TOKEN": "token",
            "AWS_DEFAULT_REGION": "us-west-2", "AWS_ENDPOINT_URL": "http://general:1", "AWS_ENDPOINT_URL_S3": "http://s3only:2",
        ]) { $1 })
        #expect(environment.credentials == AWSCredentials(accessKeyId: "ENVKEY", secretAccessKey: "envsecret", sessionToken: "token"))
        #expect(environment.region == "us-west-2")
        #expect(environment.endpoint.absoluteString == "http://s3only:2")

        let aws = try S3Configuration.resolve(environment: files)
        #expect(aws.credentials?.accessKeyId == "DEFAULTKEY")
        #expect(aws.endpoint.absoluteString == "https://s3.us-east-1.amazonaws.com")
        #expect(!aws.usePathStyle)
    }

    @Test func parsesS3Locations() {
        #expect(S3Location(uri: "s3://bucket/in/put")?.folderPrefix == "in/put/")
        #expect(S3Location(uri: "s3://bucket")?.folderPrefix == "")
        #expect(S3Location(uri: "s3://bucket/")?.prefix == "")
        #expect(S3Location(uri: "file:///x") == nil)
    }
}
