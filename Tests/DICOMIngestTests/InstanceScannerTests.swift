import DICOMCore
import DICOMIngest
import DICOMIngestModel
import DICOMIngestTestSupport
import DICOMParser
import Foundation
import Testing

/// The lenient-input decisions documented on `InstanceScanner`.
@Suite struct InstanceScannerTests {
    func scan(_ bytes: [UInt8]) throws -> FileScanResult {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scan-\(UUID().uuidString).dcm")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return InstanceScanner().scan(path: url.path, inputFile: "x.dcm", buffer: P10ReadBuffer())
    }

    func valid(_ encoding: P10Builder.Encoding = .explicitLittle, uid: String = TransferSyntax.explicitVRLittleEndian.uid) -> P10Builder {
        var builder = P10Builder(transferSyntaxUID: uid, encoding: encoding)
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.sopInstanceUID, .UI, "1.2.3.4")
        builder.string(.patientName, .PN, "Doe^Jane")
        builder.string(.studyInstanceUID, .UI, "1.2.3")
        builder.string(.seriesInstanceUID, .UI, "1.2.3.1")
        builder.uint16(.rows, 2)
        builder.element(.pixelData, .OW, bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        return builder
    }

    @Test func validFileIsOK() throws {
        let result = try scan(valid().build())
        #expect(result.status == .ok)
        #expect(result.attribute("PatientName") == .string("Doe^Jane"))
        #expect(result.attribute("TransferSyntaxUID") == .string("1.2.840.10008.1.2.1"))
    }

    @Test func junkIsNotDICOM() throws {
        for junk in [Array("{\"json\": true}".utf8), [UInt8](repeating: 0xAB, count: 4000), Array("%PDF-1.4 ...".utf8), []] {
            let result = try scan(junk)
            #expect(result.status == .error)
            #expect(result.error?.type == "NOT_DICOM")
        }
    }

    @Test func truncatedPixelDataIsAnError() throws {
        let result = try scan(Array(valid().build().dropLast(3)))
        #expect(result.status == .error)
        #expect(result.error?.type == "TRUNCATED")
        #expect(result.error?.message.contains("(7FE0,0010)") == true)
    }

    @Test func missingUIDsAreWarnings() throws {
        var builder = P10Builder(transferSyntaxUID: TransferSyntax.explicitVRLittleEndian.uid)
        builder.string(.patientName, .PN, "Doe")
        let result = try scan(builder.build())
        #expect(result.status == .warning)
        #expect(result.warnings.filter { $0.type == "MISSING_UID" }.count == 3)
        #expect(result.warnings.contains { $0.message == "DICOM attribute SOPInstanceUID does not exist" })
    }

    @Test func unknownTransferSyntaxIsReadWithAWarning() throws {
        let result = try scan(valid(uid: "1.2.3.999").build())
        #expect(result.status == .warning)
        #expect(result.warnings.contains { $0.type == "UNKNOWN_TRANSFER_SYNTAX" })
        #expect(result.attribute("SOPInstanceUID") == .string("1.2.3.4"))
    }

    @Test func rawDataSetWithoutMetaIsAWarning() throws {
        var builder = valid(.implicitLittle)
        builder = P10Builder(transferSyntaxUID: nil, encoding: .implicitLittle)
        builder.string(.sopClassUID, .UI, "1.2.840.10008.5.1.4.1.1.2")
        builder.string(.sopInstanceUID, .UI, "1.2.3.4")
        builder.string(.studyInstanceUID, .UI, "1.2.3")
        builder.string(.seriesInstanceUID, .UI, "1.2.3.1")
        let result = try scan(builder.build())
        #expect(result.status == .warning)
        #expect(result.warnings.map(\.type) == ["MISSING_FILE_META"])
    }

    /// A file the fast path declines goes to DCMTK, whose reader recurses once per level: 5,000 levels are read on
    /// its large-stack thread; a file with more Item tags than it may take is refused before DCMTK sees it, with
    /// the fast path's reason, instead of overflowing the stack (issue 10).
    @Test func deeplyNestedFilesTheFastPathDeclinesNeverOverflowDCMTK() throws {
        for (depth, readByDCMTK) in [(5_000, true), (25_000, false)] {
            var builder = valid()
            builder.raw(P10Builder.le16(0x0011) + P10Builder.le16(0x0010) + [0x7A, 0x7A] + P10Builder.le16(2) + [0x41, 0x42])
            builder.nestedSequences(depth: depth)
            let result = try scan(builder.build())
            if readByDCMTK {
                #expect(result.status == .warning)
                #expect(result.warnings.contains { $0.type == "FAST_PATH_DECLINED" })
            } else {
                #expect(result.status == .error)
                #expect(result.error?.type == "INVALID_VR")
                #expect(result.error?.message.contains("not read by DCMTK") == true)
            }
        }
    }

    @Test func invalidVRFallsBackToDCMTKOrFailsPrecisely() throws {
        var builder = valid()
        builder.raw(P10Builder.le16(0x7FE1) + P10Builder.le16(0x0001) + [0x01, 0x02] + P10Builder.le16(2) + [0, 0])
        let result = try scan(builder.build())
        if result.status == .warning {
            #expect(result.warnings.contains { $0.type == "FAST_PATH_DECLINED" })
        } else {
            #expect(result.error?.type == "INVALID_VR")
            #expect(result.error?.message.contains("(7FE1,0001)") == true)
        }
    }
}
