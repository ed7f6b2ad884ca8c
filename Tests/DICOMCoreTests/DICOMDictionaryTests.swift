import DICOMCore
import Testing

@Suite struct DICOMDictionaryTests {
    @Test func looksUpStandardKeywordVRAndMultiplicity() throws {
        let entry = try #require(DICOMDictionary.entry(for: .imageType))
        #expect(entry.keyword == "ImageType")
        #expect(entry.vr == .CS)
        #expect(entry.multiplicity.allowsMultipleValues)
        let name = try #require(DICOMDictionary.entry(for: .patientName))
        #expect(name.vr == .PN)
        #expect(!name.multiplicity.allowsMultipleValues)
    }

    @Test func resolvesRepeatingGroupsOnEvenGroupsOnly() throws {
        let overlay = try #require(DICOMDictionary.entry(for: DICOMTag(group: 0x6002, element: 0x3000)))
        #expect(overlay.keyword == "OverlayData")
        #expect(DICOMDictionary.entry(for: DICOMTag(group: 0x6003, element: 0x3000)) == nil)
    }

    @Test func dropsDCMTKRetiredPrefix() {
        #expect(DICOMDictionary.tag(forKeyword: "RETIRED_SourceImageIDs") == nil)
        #expect(DICOMDictionary.entry(for: DICOMTag(group: 0x0020, element: 0x3100))?.keyword == "SourceImageIDs")
    }

    @Test func implicitVRForPrivateAndGroupLength() {
        #expect(DICOMDictionary.implicitVR(for: DICOMTag(group: 0x0009, element: 0x0010)) == .LO)
        #expect(DICOMDictionary.implicitVR(for: DICOMTag(group: 0x0009, element: 0x1001)) == .UN)
        #expect(DICOMDictionary.implicitVR(for: DICOMTag(group: 0x0008, element: 0x0000)) == .UL)
    }

    @Test func tagFormatting() {
        #expect(DICOMTag.pixelData.hexKey == "7FE00010")
        #expect(DICOMTag.pixelData.description == "(7FE0,0010)")
        #expect(DICOMTag(hexKey: "0020000D") == .studyInstanceUID)
    }

    @Test func vrFromBytes() {
        #expect(VR(byte0: UInt8(ascii: "O"), byte1: UInt8(ascii: "B")) == .OB)
        #expect(VR(byte0: 0, byte1: 0) == nil)
        #expect(VR.OB.hasLongExplicitLength)
        #expect(!VR.US.hasLongExplicitLength)
    }
}
