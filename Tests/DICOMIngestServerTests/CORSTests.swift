import DICOMIngestServer
import DICOMIngestTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// CORS for a viewer served from another origin: preflights answered before authentication, every answer to an
/// allowed origin naming it (errors included), nothing for other origins.
@Suite struct CORSTests {
    static let origin = "http://viewer.example"

    func harness() throws -> ServerRouterTests.Harness {
        var configuration = ServerConfiguration(identities: ["AKIDTEST": .init(secretAccessKey: "secret")])
        configuration.corsOrigins = [Self.origin]
        return try ServerRouterTests.Harness(configuration: configuration)
    }

    @Test func aPreflightFromAnAllowedOriginIsAnsweredWithoutCredentials() async throws {
        let harness = try harness()
        defer { harness.folder.remove() }
        try await harness.test { client in
            let preflight = try await client.execute(
                uri: "/datastore/0123456789abcdef0123456789abcdef/studies/1.2/series/1.3/metadata", method: .options,
                headers: [.origin: Self.origin, .accessControlRequestMethod: "GET", .accessControlRequestHeaders: "authorization, accept"])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == Self.origin)
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("GET") == true)
            #expect(preflight.headers[.accessControlAllowHeaders] == "authorization, accept")
            #expect(preflight.headers[.vary] == "Origin")
        }
    }

    @Test func answersToAnAllowedOriginNameItErrorsIncluded() async throws {
        let harness = try harness()
        defer { harness.folder.remove() }
        try await harness.test { client in
            let refused = try await client.execute(uri: "/datastore", method: .get, headers: [.origin: Self.origin])
            #expect(refused.status == .forbidden)
            #expect(refused.headers[.accessControlAllowOrigin] == Self.origin)
            #expect(refused.headers[.accessControlExposeHeaders]?.contains("x-amzn-ErrorType") == true)
        }
    }

    @Test func aHeaderListThatIsNotTokensIsNotEchoed() async throws {
        let harness = try harness()
        defer { harness.folder.remove() }
        try await harness.test { client in
            let preflight = try await client.execute(
                uri: "/datastore", method: .options,
                headers: [.origin: Self.origin, .accessControlRequestMethod: "GET", .accessControlRequestHeaders: "x\r\nSet-Cookie: a=b"])
            #expect(preflight.headers[.accessControlAllowHeaders] == nil)
        }
    }

    @Test func otherOriginsGetNoCORSHeaders() async throws {
        let harness = try harness()
        defer { harness.folder.remove() }
        try await harness.test { client in
            let preflight = try await client.execute(
                uri: "/datastore", method: .options, headers: [.origin: "http://evil.example", .accessControlRequestMethod: "GET"])
            #expect(preflight.headers[.accessControlAllowOrigin] == nil)
            #expect(preflight.status != .noContent)
            let plain = try await client.execute(uri: "/datastore", method: .get, headers: [.origin: "http://evil.example"])
            #expect(plain.headers[.accessControlAllowOrigin] == nil)
        }
    }
}

/// A server started without `--config`: on loopback its own identity may pass any role (the README's boto3 example
/// works as written); reachable from elsewhere it accepts none until configured.
@Suite struct ZeroConfigurationTests {
    @Test func aLoopbackServerAcceptsAnyRoleOfItsOwnIdentity() {
        let environment = ["AWS_ACCESS_KEY_ID": "AKIDLOCAL", "AWS_SECRET_ACCESS_KEY": "secret"]
        let local = ServerConfiguration.zeroConfiguration(host: "127.0.0.1", port: 8080, environment: environment)
        #expect(local.identities["AKIDLOCAL"]?.secretAccessKey == "secret")
        #expect(local.roles["*"] != nil)
        #expect(local.localRoots.isEmpty)
        let exposed = ServerConfiguration.zeroConfiguration(host: "0.0.0.0", port: 8080, environment: environment)
        #expect(exposed.roles.isEmpty)
        #expect(ServerConfiguration.zeroConfiguration(host: "::1", port: 1, environment: [:]).identities.isEmpty)
    }
}

/// `unauthenticatedLoopbackReads`: DICOMweb reads from this machine pass without credentials when, and only when,
/// configured; other requests still need a signature (a live server on loopback, so the peer address is real).
@Suite struct LoopbackReadsTests {
    func statuses(open: Bool) async throws -> [Int] {
        var configuration = ServerConfiguration(identities: ["AKIDTEST": .init(secretAccessKey: "secret")])
        configuration.unauthenticatedLoopbackReads = open
        let harness = try ServerRouterTests.Harness(configuration: configuration)
        defer { harness.folder.remove() }
        let app = buildApplication(service: harness.service, logger: Logger(label: "test"))
        let codes = Mutex<[Int]>([])
        try await app.test(.live) { client in
            // A data store ID the route refuses before any catalog call (400 once past authentication), so the
            // answer does not wait on the catalog's threads that other suites keep busy.
            let metadata = "/datastore/BAD/studies/1.2/series/1.3/metadata"
            for (uri, method) in [(metadata, HTTPRequest.Method.get), ("/datastore", .get), ("/datastore", .post)] {
                let response = try await client.execute(uri: uri, method: method)
                codes.withLock { $0.append(Int(response.status.code)) }
            }
        }
        return codes.withLock { $0 }
    }

    @Test func onlyConfiguredLoopbackDICOMwebReadsPassWithoutCredentials() async throws {
        // Open: the read reaches the route (a malformed data store ID, 400); the REST API still needs a signature.
        #expect(try await statuses(open: true) == [400, 403, 403])
        #expect(try await statuses(open: false) == [403, 403, 403])
    }
}
