@testable import DICOMIngest
import DICOMIngestModel
import Testing

/// UpdateImageSetMetadata documents checked as HealthImaging documents them (issue 22).
@Suite struct MetadataUpdateRulesTests {
    static let series = "1.2.3.4"

    static func parse(_ text: String, force: Bool = false) throws(IngestServiceError) -> MetadataChanges {
        try parse(Array(text.utf8), force: force)
    }

    static func parse(_ bytes: [UInt8], force: Bool = false) throws(IngestServiceError) -> MetadataChanges {
        try MetadataChanges.parse(updatable: bytes, removable: nil, seriesInstanceUID: series, force: force)
    }

    static func refusal(_ text: String, force: Bool = false) -> String? {
        refusal(Array(text.utf8), force: force)
    }

    static func refusal(_ bytes: [UInt8], force: Bool = false) -> String? {
        do {
            _ = try parse(bytes, force: force)
            return nil
        } catch {
            #expect(error.code == .validationException)
            return error.message
        }
    }

    /// Each document, refused with or without force, and the words its refusal names.
    static let alwaysRefused: [(String, String)] = [
        (#"{"Study":{"DICOM":{"StudyDescription":"a\u0000b"}}}"#, "holds a NUL character"),
        (#"{"Study":{"DICOM":{"StudyDescription":"\ud800"}}}"#, "lone surrogate"),
        (#"{"Study":{"DICOM":{"__proto__":{"x":1}}}}"#, "__proto__ is not a DICOM attribute"),
        (#"{"Study":{"DICOM":{"StudyDescription":"a","StudyDescription":"b"}}}"#, "gives StudyDescription twice"),
        (#"{"Study":{"DICOM":{"StudyDate":"2024-01-01"}}}"#, "StudyDate does not fit its VR DA"),
        (#"{"Study":{"DICOM":{"StudyDescription":7}}}"#, "StudyDescription (VR LO) takes a string"),
        (#"{"Study":{"DICOM":{"StudyDescription":"a\\b"}}}"#, "StudyDescription holds a backslash"),
        (#"{"Series":{}}"#, "may hold SchemaVersion, Patient and Study, not Series"),
        (#"{"Study":{"DICOM":{"00100010":"X^Y"}}}"#, "00100010 is not a private attribute"),
        (#"{"Study":{"Series":{"1.2.3.4":{"Instances":{"9.9":{"DICOM":{"Rows":70000}}}}}}}"#, "Rows (VR US) takes a number in 0.0...65535.0"),
        (#"{"Study":{"DICOM":{"AccessionNumber":"\#(String(repeating: "1", count: 257))"}}}"#, "AccessionNumber does not fit its VR SH"),
    ]

    /// Each document, refused without force and taken with it.
    static let refusedWithoutForce: [(String, String)] = [
        (#"{"Study":{"DICOM":{"ReferencedStudySequence":[{"ReferencedSOPInstanceUID":"1.2"}]}}}"#, "ReferencedStudySequence is a sequence"),
        (#"{"Study":{"DICOM":{"NameOfPhysiciansReadingStudy":["A^B","C^D"]}}}"#, "has 2 values: multi-valued changes need force=true"),
        (#"{"Study":{"DICOM":{"Modality":"MR"}}}"#, "Modality belongs at the series level, not in Study"),
        (#"{"Study":{"Series":{"1.2.3.4":{"Instances":{"9.9":{"DICOM":{"00091010":"AQA="}}}}}}}"#, "Private attribute 00091010 can be changed at the instance level only"),
    ]

    @Test(arguments: alwaysRefused) func refusedWithOrWithoutForce(document: String, words: String) {
        for force in [false, true] {
            let message = Self.refusal(document, force: force)
            #expect(message?.contains(words) == true, "\(document) force=\(force): \(message ?? "accepted")")
        }
    }

    @Test(arguments: refusedWithoutForce) func refusedWithoutForceOnly(document: String, words: String) throws {
        let message = Self.refusal(document)
        #expect(message?.contains(words) == true, "\(document): \(message ?? "accepted")")
        _ = try Self.parse(document, force: true)
    }

    @Test func textThatIsNotUTF8IsRefused() {
        let bytes = Array(#"{"Study":{"DICOM":{"StudyDescription":"a"#.utf8) + [0xFF, 0xFE] + Array(#""}}}"#.utf8)
        #expect(Self.refusal(bytes) == "updatableAttributes is not valid UTF-8")
    }

    @Test func attributesThatFitTheirLevelAndVRAreTaken() throws {
        let changes = try Self.parse(
            #"{"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"Doe^Jane","PatientBirthDate":"19800101"}},"Study":{"DICOM":{"StudyDescription":"Ü ok \ufffd?","StudyTime":"101010.5","NameOfPhysiciansReadingStudy":["A^B"]},"Series":{"1.2.3.4":{"DICOM":{"SeriesNumber":"12","Modality":"CT"},"Instances":{"9.9":{"DICOM":{"Rows":512,"WindowCenter":"40","ImageComments":null}}}}}}}"#)
        #expect(changes.patient.updated.map(\.0) == ["PatientName", "PatientBirthDate"])
        #expect(changes.study.updated.count == 3)
        #expect(changes.series.updated.map(\.0) == ["SeriesNumber", "Modality"])
        #expect(changes.instances["9.9"]?.updated.map(\.0) == ["Rows", "WindowCenter", "ImageComments"])
    }

    @Test func aPrivateDataElementNeedsItsCreatorAtItsLevel() throws {
        let lonely = try Self.parse(
            #"{"Study":{"Series":{"1.2.3.4":{"Instances":{"9.9":{"DICOM":{"00091010":"AQA="}}}}}}}"#, force: true)
        #expect(throws: ImageSetStoreError.self) {
            _ = try MetadataChanges.apply(lonely.instances["9.9"]!, toDICOM: Array(#"{"Rows":2}"#.utf8))
        }
        let withCreator = try MetadataChanges.apply(lonely.instances["9.9"]!, toDICOM: Array(#"{"00090010":"ACME"}"#.utf8))
        #expect(String(decoding: withCreator, as: UTF8.self) == #"{"00090010":"ACME","00091010":"AQA="}"#)
        let both = try Self.parse(
            #"{"Study":{"Series":{"1.2.3.4":{"Instances":{"9.9":{"DICOM":{"00090010":"ACME","00091010":"AQA="}}}}}}}"#, force: true)
        _ = try MetadataChanges.apply(both.instances["9.9"]!, toDICOM: Array("{}".utf8))
    }

    @Test func removalsAreCheckedByNameAndLevel() {
        do {
            _ = try MetadataChanges.parse(
                updatable: nil, removable: Array(#"{"Study":{"DICOM":{"NotAKeyword":""}}}"#.utf8), seriesInstanceUID: Self.series,
                force: false)
            Issue.record("a removal of a name that is not DICOM was taken")
        } catch {
            #expect(error.message.contains("NotAKeyword is not a DICOM attribute"))
        }
    }
}
