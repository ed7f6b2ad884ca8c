import DICOMIngestModel
@testable import DICOMIngestServer
import DICOMIngestTestSupport
import Foundation
import Testing

/// The `oidc` section of the server's configuration: a key set that cannot be read fails the start; a good one
/// turns bearer tokens on for DICOMweb reads (the tokens themselves are checked end to end in wado_e2e.py).
@Suite struct BearerTokenConfigurationTests {
    static let jwks = #"{"keys":[{"kty":"RSA","kid":"k","alg":"RS256","use":"sig","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}]}"#

    func load(_ object: String, in folder: TemporaryFolder) throws -> ServerConfiguration {
        let path = folder.sub("server.json")
        try Data(object.utf8).write(to: URL(fileURLWithPath: path))
        return try ServerConfiguration.load(path: path, base: ServerConfiguration())
    }

    @Test func aReadableKeySetTurnsBearerTokensOn() throws {
        let folder = try TemporaryFolder("oidc")
        defer { folder.remove() }
        try Data(Self.jwks.utf8).write(to: URL(fileURLWithPath: folder.sub("jwks.json")))
        let configuration = try load(
            #"{"oidc":{"issuer":"https://idp/","audience":"dicomweb","jwks":"\#(folder.sub("jwks.json"))","datastores":["*"]}}"#, in: folder)
        #expect(configuration.bearerTokens?.issuer == "https://idp/")
        #expect(configuration.bearerTokens?.audience == "dicomweb")
        #expect(configuration.bearerTokens?.datastores == ["*"])
        #expect(try load("{}", in: folder).bearerTokens == nil)
    }

    @Test func aKeySetThatCannotBeReadOrAnIncompleteSectionFailsTheStart() throws {
        let folder = try TemporaryFolder("oidc-bad")
        defer { folder.remove() }
        try Data("{\"keys\": 3}".utf8).write(to: URL(fileURLWithPath: folder.sub("bad.json")))
        #expect(throws: (any Error).self) {
            try load(#"{"oidc":{"issuer":"i","audience":"a","jwks":"\#(folder.sub("missing.json"))"}}"#, in: folder)
        }
        #expect(throws: (any Error).self) {
            try load(#"{"oidc":{"issuer":"i","audience":"a","jwks":"\#(folder.sub("bad.json"))"}}"#, in: folder)
        }
        #expect(throws: (any Error).self) { try load(#"{"oidc":{"issuer":"i"}}"#, in: folder) }
    }

    @Test func aKeySetURLIsHTTPSOrLoopbackAndIsFetchedWhenTheServerPrepares() async throws {
        let folder = try TemporaryFolder("oidc-url")
        defer { folder.remove() }
        let remote = try load(#"{"oidc":{"issuer":"i","audience":"a","jwks":"https://idp.example/jwks"}}"#, in: folder)
        #expect(remote.bearerTokens?.jwks == "https://idp.example/jwks")
        for refused in ["http://idp.example/jwks", "ftp://127.0.0.1/jwks", "https:///jwks"] {
            #expect(throws: (any Error).self, "\(refused)") {
                try load(#"{"oidc":{"issuer":"i","audience":"a","jwks":"\#(refused)"}}"#, in: folder)
            }
        }
        // Nothing listens on port 9 of loopback: the key set cannot be fetched, and the server would refuse
        // every token, so it does not start.
        let unreachable = try load(#"{"oidc":{"issuer":"i","audience":"a","jwks":"http://127.0.0.1:9/jwks.json"}}"#, in: folder)
        let verifier = try BearerTokenVerifier(configuration: try #require(unreachable.bearerTokens))
        await #expect(throws: IngestServiceError.self) { _ = try await verifier.keys() }
    }

    @Test func aPublicURLIsWhereRetrieveAndBulkDataURIsPoint() throws {
        let folder = try TemporaryFolder("public-url")
        defer { folder.remove() }
        #expect(try load(#"{"publicURL":"https://pacs.example.org/imaging/"}"#, in: folder).publicURL == "https://pacs.example.org/imaging")
        for refused in ["ftp://pacs/", "https://pacs/?a=1", "pacs.example.org", "https://user@pacs/"] {
            #expect(throws: (any Error).self, "\(refused)") { try load(#"{"publicURL":"\#(refused)"}"#, in: folder) }
        }
        #expect(DICOMwebRoutes.datastoreURI("d", authority: "h:1", port: 8080, publicURL: "https://pacs") == "https://pacs/datastore/d")
        #expect(DICOMwebRoutes.datastoreURI("d", authority: "h:1", port: 8080, publicURL: nil) == "http://h:1/datastore/d")
        #expect(DICOMwebRoutes.datastoreURI("d", authority: "h", port: 8080, publicURL: nil) == "http://h:8080/datastore/d")
        #expect(DICOMwebRoutes.datastoreURI("d", authority: "h", port: 80, publicURL: nil) == "http://h/datastore/d")
        #expect(DICOMwebRoutes.datastoreURI("d", authority: "[::1]", port: 8080, publicURL: nil) == "http://[::1]:8080/datastore/d")
        #expect(DICOMwebRoutes.datastoreURI("d", authority: "a b/<x>", port: 8080, publicURL: nil) == "http://localhost:8080/datastore/d")
    }
}
