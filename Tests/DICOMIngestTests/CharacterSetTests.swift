import DICOMCore
import DICOMIngest
import DICOMIngestModel
import DICOMIngestTestSupport
import DICOMParser
import Foundation
import Testing

@Suite struct CharacterSetTests {
    @Test func decodesISO2022JapanesePersonName() {
        let set = SpecificCharacterSet(terms: ["", "ISO 2022 IR 87"])
        // "Yamada^Tarou=山田^太郎" with ESC $ B / ESC ( B switching (PS3.5 Annex H).
        let bytes: [UInt8] =
            Array("Yamada^Tarou=".utf8) + [0x1B, 0x24, 0x42, 0x3B, 0x33, 0x45, 0x44, 0x1B, 0x28, 0x42, 0x5E, 0x1B, 0x24, 0x42, 0x42, 0x40, 0x4F, 0x3A, 0x1B, 0x28, 0x42]
        #expect(set.decode(bytes[...], isPersonName: true) == "Yamada^Tarou=山田^太郎")
    }

    @Test func decodesLatin1AndUTF8Natively() {
        #expect(SpecificCharacterSet(terms: ["ISO_IR 100"]).decode([0x4A, 0xE9][...], isPersonName: false) == "Jé")
        #expect(SpecificCharacterSet(terms: ["ISO_IR 192"]).decode(Array("王^小東".utf8)[...], isPersonName: true) == "王^小東")
    }

    @Test func toleratesMisspelledTerms() {
        #expect(SpecificCharacterSet(terms: ["ISO_IR100"]).decode([0xE9][...], isPersonName: false) == "é")
        #expect(SpecificCharacterSet(terms: ["ISO-IR 144"]).decode([0xBB][...], isPersonName: false) == "Л")
    }

    /// Repertoires the pydicom corpus does not cover; byte strings produced with Python's codecs.
    @Test(arguments: [
        (["ISO_IR 101"], [163, 243, 100, 188] as [UInt8], "Łódź"),
        (["ISO_IR 109"], [161, 97, 245, 97, 114], "Ħaġar"),
        (["ISO_IR 110"], [171, 105, 114, 116, 115], "Ģirts"),
        (["ISO_IR 148"], [222, 105, 254, 108, 105], "Şişli"),
        (["ISO_IR 203"], [164, 117, 114, 111], "€uro"),
        (["ISO_IR 166"], [202, 193, 170, 210, 194], "สมชาย"),
        (["GBK"], [205, 245, 208, 161, 182, 171], "王小东"),
        (["GB18030"], [205, 245, 208, 161, 182, 171, 149, 50, 130, 54], "王小东𠀀"),
        (["", "ISO 2022 IR 58"], [27, 36, 41, 65, 205, 245], "王"),
        (["", "ISO 2022 IR 159"], [27, 36, 40, 68, 48, 33, 27, 40, 66], "丂"),
    ])
    func decodesOtherRepertoires(terms: [String], bytes: [UInt8], expected: String) {
        #expect(SpecificCharacterSet(terms: terms).decode(bytes[...], isPersonName: false) == expected)
    }

    @Test func undecodableBytesBecomeReplacementCharacters() {
        let text = SpecificCharacterSet(terms: ["GB18030"]).decode([0x41, 0xFF, 0x42][...], isPersonName: false)
        #expect(text.hasPrefix("A"))
        #expect(text.hasSuffix("B"))
        #expect(text.contains("\u{FFFD}"))
    }

    /// Every text value of pydicom's charset files must decode to exactly what pydicom decodes.
    @Test(.enabled(if: Fixtures.externalCorpusAvailable))
    func matchesPydicomOnItsCharsetFiles() throws {
        let expectedURL = Fixtures.external.appendingPathComponent("expected-charsets.json")
        let expected = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: expectedURL)) as? [String: [String: [[String]]]])
        #expect(expected.count >= 15)
        let reader = InstanceReader(options: .init(buildMetadata: true, summaryTags: []))
        for (file, values) in expected.sorted(by: { $0.key < $1.key }) {
            let path = Fixtures.external.appendingPathComponent("charset_files/\(file)").path
            let read = try reader.read(input: try FileByteInput(path: path), buffer: P10ReadBuffer())
            let metadata = try #require(read.metadata)
            let document = JSONValue.object(metadata.patient + metadata.study + metadata.series + metadata.instance)
            for (hexKey, occurrences) in values {
                let tag = try #require(DICOMTag(hexKey: hexKey))
                // pydicom names private tags from its private dictionary; we keep them raw (UN, base64) as AWS does.
                if tag.isPrivate { continue }
                let key = tag.isPrivate ? hexKey : (DICOMDictionary.entry(for: tag)?.keyword ?? hexKey)
                let ours = Self.collect(key, in: document).map(Self.texts)
                #expect(ours == occurrences, "\(file) \(key)")
            }
        }
    }

    static func collect(_ key: String, in value: JSONValue) -> [JSONValue] {
        switch value {
        case .object(let members):
            return members.flatMap { member -> [JSONValue] in
                (member.0 == key ? [member.1] : []) + collect(key, in: member.1)
            }
        case .array(let values):
            return values.flatMap { collect(key, in: $0) }
        default:
            return []
        }
    }

    static func texts(_ value: JSONValue) -> [String] {
        switch value {
        case .string(let text): return [text]
        case .array(let values): return values.map { $0.stringValue ?? "" }
        default: return []
        }
    }
}
