import DICOMIngestServer
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
}
