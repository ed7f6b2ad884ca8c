import DICOMIngest
import Foundation
import Testing

/// `file://` input and output prefixes are percent-decoded the way `URL(fileURLWithPath:)` encodes them.
@Suite struct LocalPrefixURITests {
    @Test func decodesWhatFoundationEncodes() throws {
        let path = "/tmp/scans 2026/Müller ✓/100%"
        let uri = URL(fileURLWithPath: path).absoluteString
        #expect(uri.contains("%20"))
        #expect(try LocalObjectIOFactory.path(of: uri) == path)
    }

    @Test func keepsAPercentSignThatIsNotAnEscape() throws {
        #expect(try LocalObjectIOFactory.path(of: "file:///data/50%zz/a%2") == "/data/50%zz/a%2")
        #expect(try LocalObjectIOFactory.path(of: "file:///data/%41%42") == "/data/AB")
    }

    @Test func refusesOtherSchemes() {
        #expect(throws: ObjectIOError.self) { try LocalObjectIOFactory.path(of: "s3://bucket/prefix/") }
    }
}
