import DICOMCore
@testable import DICOMIngest
import DICOMIngestModel
import Testing

/// DICOM JSON (PS3.18 Annex F) from the metadata document's attribute forms (`ElementValueDecoder`'s).
@Suite struct DICOMJSONTests {
    func json(_ attributes: [(String, JSONValue)], vrs: [String: String] = [:]) -> String {
        DICOMJSON.dataset(attributes, vrs: vrs).serialized()
    }

    @Test func membersAreTagsInOrderWithTheirVRs() {
        #expect(json([("PatientID", .string("P1")), ("Modality", .string("CT"))])
            == #"{"00080060":{"vr":"CS","Value":["CT"]},"00100020":{"vr":"LO","Value":["P1"]}}"#)
    }

    @Test func personNamesAreComponentGroups() {
        #expect(json([("PatientName", .string("Yamada^Tarou=山田^太郎=やまだ^たろう"))])
            == #"{"00100010":{"vr":"PN","Value":[{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎","Phonetic":"やまだ^たろう"}]}}"#)
        #expect(json([("PatientName", .string("=山田"))]) == #"{"00100010":{"vr":"PN","Value":[{"Ideographic":"山田"}]}}"#)
    }

    @Test func integerAndDecimalStringsAreNumbers() {
        #expect(json([("SeriesNumber", .string(" 3 "))]) == #"{"00200011":{"vr":"IS","Value":[3]}}"#)
        #expect(json([("SliceThickness", .string("1.25"))]) == #"{"00180050":{"vr":"DS","Value":[1.25]}}"#)
        #expect(json([("PixelSpacing", .array([.string("0.5"), .string("2")]))]) == #"{"00280030":{"vr":"DS","Value":[0.5,2]}}"#)
        // Text that is not a number stays text rather than being lost.
        #expect(json([("SliceThickness", .string("n/a"))]) == #"{"00180050":{"vr":"DS","Value":["n/a"]}}"#)
    }

    @Test func emptyValuesHaveNoValueAndEmptyItemsOfAListAreNull() {
        #expect(json([("AccessionNumber", .null)]) == #"{"00080050":{"vr":"SH"}}"#)
        #expect(json([("ImageType", .array([.string("ORIGINAL"), .string("")]))])
            == #"{"00080008":{"vr":"CS","Value":["ORIGINAL",null]}}"#)
    }

    @Test func binaryIsInlineAndPrivateAttributesTakeTheirRecordedVR() {
        #expect(json([("00091002", .string("AAE="))], vrs: ["00091002": "OB"]) == #"{"00091002":{"vr":"OB","InlineBinary":"AAE="}}"#)
        #expect(json([("00091001", .string("x"))], vrs: ["00091001": "LO"]) == #"{"00091001":{"vr":"LO","Value":["x"]}}"#)
        #expect(json([("00091003", .string("AAE="))]) == #"{"00091003":{"vr":"UN","InlineBinary":"AAE="}}"#)
    }

    @Test func sequencesNestAndAnAmbiguousVRFollowsItsValue() {
        let item: JSONValue = .object([("CodeValue", .string("1")), ("CodingSchemeDesignator", .string("DCM"))])
        #expect(json([("ProcedureCodeSequence", .array([item]))])
            == #"{"00081032":{"vr":"SQ","Value":[{"00080100":{"vr":"SH","Value":["1"]},"00080102":{"vr":"SH","Value":["DCM"]}}]}}"#)
        #expect(json([("SmallestImagePixelValue", .int(-5))]) == #"{"00280106":{"vr":"SS","Value":[-5]}}"#)
        #expect(json([("SmallestImagePixelValue", .int(5))]) == #"{"00280106":{"vr":"US","Value":[5]}}"#)
    }

    /// Past 1 MB a binary value is a BulkDataURI whose key finds it again, at the top level and inside an item.
    @Test func largeBinaryValuesAreBulkDataURIsTheirKeysFindAgain() throws {
        let large = String(repeating: "AAAA", count: (1 << 20) / 3 + 10)
        let item: JSONValue = .object([("PixelData", .string(large))])
        let attributes: [(String, JSONValue)] = [
            ("00091001", .string(large)), ("IconImageSequence", .array([item])), ("00091002", .string("AAE=")),
        ]
        let vrs = ["00091001": "OB", "00091002": "OB"]
        let dataset = DICOMJSON.dataset(attributes, vrs: vrs, bulkData: .init(baseURI: "http://h/i/bulkdata", query: "?imageSetId=x"))
        let top = DICOMJSON.bulkDataKey(["00091001"])
        let nested = DICOMJSON.bulkDataKey(["00880200", "0", "7FE00010"])
        #expect(top != nested && top.utf8.count == 32)
        #expect(dataset["00091001"]?["BulkDataURI"] == .string("http://h/i/bulkdata/\(top)?imageSetId=x"))
        guard case .array(let items)? = dataset["00880200"]?["Value"] else { Issue.record("no items"); return }
        #expect(items.first?["7FE00010"]?["BulkDataURI"] == .string("http://h/i/bulkdata/\(nested)?imageSetId=x"))
        #expect(dataset["00091002"]?["InlineBinary"] == .string("AAE="))
        #expect(DICOMJSON.bulkValue(key: top, in: attributes, vrs: vrs) == large)
        #expect(DICOMJSON.bulkValue(key: nested, in: attributes, vrs: vrs) == large)
        #expect(DICOMJSON.bulkValue(key: String(repeating: "0", count: 32), in: attributes, vrs: vrs) == nil)
    }

    @Test func theMetadataNamesTheStoredSyntaxAndLeavesPixelDataOut() {
        let instance = StoredInstance(
            sopInstanceUID: "1.2", attributes: [("TransferSyntaxUID", .string("1.2.840.10008.1.2.4.70")), ("PixelData", .null)],
            vrs: [:], storedTransferSyntaxUID: "1.2.840.10008.1.2.4.202", frames: [])
        #expect(instance.dicomJSON().serialized() == #"{"00020010":{"vr":"UI","Value":["1.2.840.10008.1.2.4.202"]}}"#)
    }
}
